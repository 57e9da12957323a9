"""Reading the school's HTML: declared charsets (GBK above all), text of nodes, and forms
as a browser submits them. Shared by every school system's page parsers; pure, no I/O.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, replace

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import SchoolPageError

Page = bytes | str

# Evidence: the card center and the academic office declare GBK; a page that
# declares nothing is taken as GBK (the campus systems of 2013 all were).
DEFAULT_CHARSET = "gbk"

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
SPACES = re.compile(r"[\s\u3000\xa0]+")


@dataclass(frozen=True, slots=True)
class Form:
    """A form as a browser would submit it: where, how, and its successful fields."""

    action: str
    method: str
    fields: tuple[tuple[str, str], ...]

    def names(self) -> set[str]:
        """The names of its fields."""
        return {name for name, _ in self.fields}

    def with_values(self, values: dict[str, str]) -> Form:
        """A copy with these fields set (replaced where present, else added)."""
        left = dict(values)
        fields = [(n, left.pop(n) if n in left else v) for n, v in self.fields]
        return replace(self, fields=(*fields, *left.items()))


def page_charset(body: bytes, content_type: str | None = None, usual: str = DEFAULT_CHARSET) -> str:
    """The declared charset: the Content-Type header first, then the meta tag, else the
    system's usual one (GBK unless said otherwise)."""
    if content_type:
        found = _HEADER_CHARSET.search(content_type)
        if found:
            return found.group(1).lower()
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        return meta.group(1).decode("ascii").lower()
    return usual


def codec_of(charset: str) -> str:
    """The Python codec for a declared charset; SchoolPageError if unknown.

    Browsers (WHATWG) decode pages labelled GBK/GB2312 with the GB18030
    decoder, a superset; old Java servers send such characters under the GBK label.
    """
    try:
        codec = codecs.lookup(charset).name
    except LookupError as exc:
        raise SchoolPageError(f"page declares an unknown charset {charset!r}") from exc
    return "gb18030" if codec in ("gbk", "gb2312") else codec


def decode_page(page: Page, content_type: str | None = None) -> str:
    """The page as text, decoded by its declared charset; SchoolPageError if it does not decode."""
    if isinstance(page, str):
        return page
    charset = page_charset(page, content_type)
    try:
        return page.decode(codec_of(charset))
    except (UnicodeDecodeError, LookupError) as exc:  # LookupError: rot13, hex... not text
        raise SchoolPageError(f"page does not decode as {charset}") from exc


def tree_of(page: Page, content_type: str | None) -> tuple[str, LexborHTMLParser]:
    text = decode_page(page, content_type)
    return text, LexborHTMLParser(text)


def text_of(node: LexborNode | None) -> str:
    """A node's text, with runs of spaces (also full-width and no-break ones) made one space."""
    if node is None:
        return ""
    return SPACES.sub(" ", node.text(deep=True, separator="", strip=False)).strip()


def squeezed(text: str) -> str:
    """The text without any spaces, to compare labels padded with spaces ("卡  状  态：")."""
    return SPACES.sub("", text)


def body_text(tree: LexborHTMLParser) -> str:
    return text_of(tree.body) if tree.body is not None else text_of(tree.root)


def forms_of(tree: LexborHTMLParser) -> tuple[Form, ...]:
    """Every form of a page, as a browser would submit it."""
    forms = []
    for node in tree.css("form"):
        method = (node.attributes.get("method") or "get").strip().upper()
        forms.append(
            Form(
                action=(node.attributes.get("action") or "").strip(),
                # HTML's default is GET; anything but POST is sent as GET.
                method="POST" if method == "POST" else "GET",
                fields=_form_fields(node),
            )
        )
    return tuple(forms)


def _form_fields(form: LexborNode) -> tuple[tuple[str, str], ...]:
    """The fields a browser submits with the form's first submit button.

    Evidence: 2013 sent every input with its value and the first option of
    each select; later clients send `Submit=" 确 定 "` (the button). As a
    browser: unchecked boxes, other buttons and disabled fields are not sent.
    """
    fields: list[tuple[str, str]] = []
    clicked = False
    for node in form.css("input, select, textarea"):
        attrs = node.attributes
        name = attrs.get("name")
        if not name or "disabled" in attrs:
            continue
        if node.tag == "select":
            options = node.css("option")
            chosen = [o for o in options if "selected" in o.attributes] or options[:1]
            if chosen:
                value = chosen[0].attributes.get("value")
                # As a browser does: an option without a value attribute submits its text.
                fields.append((name, (value if value is not None else text_of(chosen[0])).strip()))
            continue
        if node.tag == "textarea":
            fields.append((name, node.text(deep=True)))
            continue
        kind = (attrs.get("type") or "text").strip().lower()
        value = attrs.get("value") or ""
        if kind in ("checkbox", "radio") and "checked" not in attrs:
            continue
        if kind in ("reset", "button", "file", "image"):
            continue
        if kind == "submit":
            if clicked:
                continue
            clicked = True
        fields.append((name, value))
    return tuple(fields)
