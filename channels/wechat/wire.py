"""WeChat's XML on the wire: parsed safely, written with CDATA that cannot be broken out of.

Parsing goes through defusedxml with every DTD refused (so no entity, internal or
external, is ever declared or expanded: no billion laughs, no file or URL read), after
the body's size is checked against a cap. Writing escapes `]]>` by closing and
reopening the CDATA section; characters XML 1.0 cannot carry become U+FFFD, and line
ends become \\n, as any XML parser would turn them.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from channels.wechat.errors import BodyTooLarge, MalformedMessage

DEFAULT_MAX_BODY_BYTES = 64 * 1024
_NOT_XML_CHAR = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def parse_document(body: bytes, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Element:
    """The <xml> root element of body.

    Raises BodyTooLarge beyond max_bytes, MalformedMessage if body is not a safe,
    well-formed document whose root is <xml>.
    """
    if len(body) > max_bytes:
        raise BodyTooLarge(f"the body exceeds {max_bytes} bytes")
    try:
        root: Element = defusedxml.ElementTree.fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise MalformedMessage("the XML declares a DTD or entities") from None
    except (ParseError, ValueError):
        raise MalformedMessage("the body is not well-formed XML") from None
    if root.tag != "xml":
        raise MalformedMessage("the root element is not <xml>")
    return root


def fields_of(element: Element) -> dict[str, str]:
    """The text of element's children that hold text only, by name.

    Raises MalformedMessage if a name is repeated (which one would count is ambiguous)
    or is not a plain name.
    """
    fields: dict[str, str] = {}
    for child in element:
        name = child.tag
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise MalformedMessage("an element with an unexpected name")
        if name in fields:
            raise MalformedMessage(f"<{name}> appears twice")
        fields[name] = "" if len(child) else (child.text or "")
    return fields


def parse_fields(body: bytes, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict[str, str]:
    """The fields of a flat <xml> document (as parse_document, then fields_of)."""
    return fields_of(parse_document(body, max_bytes))


def xml_text(value: str) -> str:
    """value as XML 1.0 can carry it: line ends as \\n, other forbidden characters U+FFFD."""
    return _NOT_XML_CHAR.sub("\ufffd", value.replace("\r\n", "\n").replace("\r", "\n"))


def cdata(value: str) -> str:
    """value in a CDATA section; a `]]>` inside is split across two sections."""
    return "<![CDATA[" + xml_text(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def element(name: str, value: str | int) -> str:
    """<name>value</name>: a number as digits, text as CDATA."""
    inner = str(value) if isinstance(value, int) else cdata(value)
    return f"<{name}>{inner}</{name}>"


def document(parts: list[str]) -> bytes:
    """An <xml> document of already written elements, as UTF-8."""
    return ("<xml>" + "".join(parts) + "</xml>").encode("utf-8")
