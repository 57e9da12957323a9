"""The XML layer alone: CDATA that cannot be broken out of, characters XML cannot carry,
the replay store's bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.wechat.replay import MemoryNonceStore
from channels.wechat.wire import cdata, document, element, parse_fields


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_cdata_never_lets_content_out(text: str) -> None:
    body = document([element("Content", text), element("After", "fixed")])
    fields = parse_fields(body, max_bytes=10**7)
    assert set(fields) == {"Content", "After"}
    assert fields["After"] == "fixed"
    carried = fields["Content"]
    assert len(carried) == len(text.replace("\r\n", "\n"))


def test_cdata_end_inside_content_survives() -> None:
    text = "a]]><After>injected</After><![CDATA[b]]]]>>"
    fields = parse_fields(document([element("Content", text)]))
    assert fields == {"Content": text}
    assert cdata("]]>") == "<![CDATA[]]]]><![CDATA[>]]>"


def test_characters_xml_cannot_carry_become_replacement() -> None:
    text = "a\x00b\x1bc\ud800d\ufffe\r\ne\rf😀"
    fields = parse_fields(document([element("Content", text)]))
    assert fields["Content"] == "a\ufffdb\ufffdc\ufffdd\ufffd\ne\nf😀"


def test_numbers_are_written_bare() -> None:
    assert element("CreateTime", 1409735668) == "<CreateTime>1409735668</CreateTime>"


async def test_store_holds_a_key_until_it_expires() -> None:
    store = MemoryNonceStore()
    assert await store.claim("a", expires_at=100.0, now=0.0)
    assert not await store.claim("a", expires_at=100.0, now=100.0)
    assert await store.claim("a", expires_at=300.0, now=100.5)
    assert len(store) == 1


async def test_store_memory_is_bounded() -> None:
    store = MemoryNonceStore(max_entries=3)
    for i in range(10):
        assert await store.claim(f"k{i}", expires_at=1000.0 + i, now=0.0)
    assert len(store) == 3
    assert store.evicted == 7
    # The newest are still held; the oldest were forgotten first.
    assert not await store.claim("k9", expires_at=2000.0, now=1.0)
    assert await store.claim("k0", expires_at=2000.0, now=1.0)


async def test_expired_keys_are_forgotten() -> None:
    store = MemoryNonceStore()
    for i in range(100):
        await store.claim(f"k{i}", expires_at=10.0, now=0.0)
    await store.claim("late", expires_at=50.0, now=11.0)
    assert len(store) == 1
