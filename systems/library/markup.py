"""What both catalogues' page parsers share: a page read by its content, not its markup.

A page's charset is the one the HTTP header declares, else its `<meta>`, else the
catalogue's usual one (UTF-8 at the WebPAC, GBK at ILAS); classes are matched
whatever their case, on whatever element holds them; and a page is complete when
every table it opens is closed (HTML never lets a page leave out `</table>`,
unlike `</td>`, `</tr>`, `</body>` or `</html>`): a page cut inside its content is
refused, one cut after it is not (docs/library-protocol.md).
"""

from __future__ import annotations

import codecs
import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import SchoolPageError
from school.html import Page, page_charset

_NOT_MARKUP = re.compile(r"<!--.*?-->|<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_TABLE_OPEN = re.compile(r"<table\b", re.IGNORECASE)
_TABLE_CLOSE = re.compile(r"</table\s*>", re.IGNORECASE)


def read_page(
    page: Page, content_type: str | None, usual: str, kind: str
) -> tuple[str, LexborHTMLParser]:
    """The page's text and tree; SchoolPageError(kind) if it does not decode.

    GBK and GB2312 are decoded as GB18030, as browsers do (WHATWG)."""
    if isinstance(page, str):
        return page, LexborHTMLParser(page)
    charset = page_charset(page, content_type, usual)
    try:
        codec = codecs.lookup(charset).name
        text = page.decode("gb18030" if codec in ("gbk", "gb2312") else codec)
    except LookupError as exc:
        raise SchoolPageError(f"page declares an unknown charset {charset!r}", kind) from exc
    except UnicodeDecodeError as exc:
        raise SchoolPageError(f"page does not decode as {charset}", kind) from exc
    return text, LexborHTMLParser(text)


def has_class(node: LexborNode, name: str) -> bool:
    """Whether a node carries a class, compared without regard to case."""
    classes = (node.attributes.get("class") or "").lower().split()
    return name.lower() in classes


def with_class(scope: LexborNode | LexborHTMLParser, name: str, tag: str = "*") -> list[LexborNode]:
    """The nodes under `scope` (of `tag`, any by default) carrying class `name`, any case."""
    return [node for node in scope.css(f"{tag}[class]") if has_class(node, name)]


def first_with_class(
    scope: LexborNode | LexborHTMLParser, name: str, tag: str = "*"
) -> LexborNode | None:
    found = with_class(scope, name, tag)
    return found[0] if found else None


def tables_closed(text: str) -> bool:
    """Whether every table the page opens is closed (comments and scripts aside)."""
    markup = _NOT_MARKUP.sub("", text)
    return len(_TABLE_CLOSE.findall(markup)) >= len(_TABLE_OPEN.findall(markup))
