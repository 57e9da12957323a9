"""Markup variants: the same page, written as different real servers write it.

Every simulated system (card center, academic office, both catalogues) renders
each of its page kinds in every variant below. The facts on a page (balances,
courses, books, login outcomes) never change with the variant; only how the
markup says them does. A client that gives a different answer, or a different
login outcome, under another variant depends on how our simulator writes its
pages, not on what the school's pages mean.

Which variant a page is written in: the system's `variant` setting
(`/__sim/<system>/control`, `--set variant=...`); `mixed` picks one per student
(per query for the catalogues), stable for a given key, so one run sees them all.

The variants (each system's protocol document says, page kind by page kind, which
traits rest on evidence and which are guesses):

- `plain`: the rendering the simulator always had (the default).
- `legacy`: as an older server writes it: upper-case tags, labels and messages
  in `<font>`, end tags left open (no `</td>`, `</tr>`, `</body>`, `</html>`),
  attribute values unquoted where HTML allows it, the charset declared only in
  a `<meta>`.
- `modern`: as a later server writes it: labels and messages in `<span>`, the
  charset in the HTTP header and in a `<meta charset>`, banners, navigation and
  scripts around the content, whitespace and line breaks inside cells, page
  sizes as the evidence records them (padding where our pages are smaller).
- `bare`: the smallest page that means the same: labels in `<td>`, character
  references (`&#20313;`, `&nbsp;`) for some text, no charset declared anywhere
  (the bytes stay in the system's usual charset), no closing `</html>`.
"""

from __future__ import annotations

import re
import zlib
from html import escape
from typing import Literal, get_args

Variant = Literal["plain", "legacy", "modern", "bare"]
VariantSetting = Literal["plain", "legacy", "modern", "bare", "mixed"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)


def variant_for(setting: VariantSetting, key: str) -> Variant:
    """The variant a page for `key` (a student number, a query) is written in."""
    if setting != "mixed":
        return setting
    return VARIANTS[zlib.crc32(key.encode("utf-8")) % len(VARIANTS)]


# --- traits shared by every system's variants ---------------------------------------------

_END_TAGS = re.compile(r"</(?:td|tr|th|li|p|option|body|html)>", re.IGNORECASE)
_TAG_NAME = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")


def open_tags(html: str) -> str:
    """End tags HTML lets a page leave out, left out (legacy servers did)."""
    return _END_TAGS.sub("", html)


def upper_tags(html: str) -> str:
    """Tag names in upper case (`<TD>`), as older servers and editors wrote them."""
    return _TAG_NAME.sub(lambda m: f"<{m.group(1)}{m.group(2).upper()}", html)


def without_html_end(html: str) -> str:
    """The page without its closing `</body>` and `</html>`."""
    return re.sub(r"\s*</body>\s*</html>\s*$|\s*</html>\s*$", "", html, flags=re.IGNORECASE)


def char_refs(text: str, every: int = 3) -> str:
    """Some CJK characters of a text written as numeric character references."""
    out = []
    for i, ch in enumerate(text):
        out.append(f"&#{ord(ch)};" if "\u4e00" <= ch <= "\u9fff" and i % every == 0 else ch)
    return "".join(out)


def padding(size: int) -> str:
    """Markup of about `size` characters that means nothing: a banner, a script, a
    comment, as real pages carry around their content."""
    if size <= 0:
        return ""
    banner = (
        '<div class="banner" id="top"><a href="#main">跳到正文</a> '
        '<img src="images/logo.gif" alt="暨南大学" width="300" height="60" /></div>\n'
        '<script type="text/javascript">\n//<![CDATA[\nfunction MM_preloadImages() '
        "{ var d=document; if(d.images){ if(!d.MM_p) d.MM_p=new Array(); } }\n//]]>\n"
        "</script>\n"
    )
    filler = "<!-- " + "-" * 70 + " -->\n"
    out = banner
    while len(out) < size:
        out += filler
    return out


def escaped(text: str, variant: Variant) -> str:
    """Text escaped as a variant writes it: in `bare`, some CJK characters as character
    references too (guess)."""
    return char_refs(escape(text)) if variant == "bare" else escape(text)
