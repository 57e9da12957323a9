"""Both sides of the protocol in every mode: round trips, and every refusal."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.wechat.cipher import MessageCipher
from channels.wechat.config import Mode
from channels.wechat.endpoint import AccountEndpoint, CallbackQuery, Inbound
from channels.wechat.errors import (
    BadSignature,
    BodyTooLarge,
    MalformedMessage,
    ReplayedNonce,
    StaleTimestamp,
    UndecryptableMessage,
    WeChatError,
    WrongAppId,
)
from channels.wechat.messages import (
    MenuClick,
    MenuView,
    SubscribeEvent,
    TextMessage,
    UnsubscribeEvent,
    UnsupportedMessage,
)
from channels.wechat.replay import MemoryNonceStore, ReplayGuard
from channels.wechat.reply_xml import SUCCESS, Article, news_reply, text_reply
from channels.wechat.signature import sign
from channels.wechat.simulated_platform import SignedPost, SimulatedPlatform

from .protocol_support import (
    APP_ID,
    ENCODING_AES_KEY,
    MODES,
    OPENID,
    T0,
    TOKEN,
    Clock,
    Pair,
    account,
    encrypt_unpadded,
    seal_raw,
)

NOW = datetime.fromtimestamp(T0, UTC)


@pytest.fixture(params=MODES)
def pair(request: pytest.FixtureRequest) -> Pair:
    return Pair(request.param)


# Any text XML can carry (no surrogates, no C0 controls but tab and line ends), with
# `]]>` and emoji mixed in often.
xml_chars = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="".join(chr(c) for c in range(32) if c not in (9, 10, 13)) + "\ufffe\uffff",
)
contents = st.lists(
    st.one_of(
        st.text(xml_chars, max_size=20), st.sampled_from(["]]>", "]]", "😀", "\r\n", "<![CDATA["])
    ),
    max_size=8,
).map("".join)


def as_parsed(text: str) -> str:
    """text as any XML parser returns it: line ends normalised to \\n."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


async def receive(pair: Pair, post: SignedPost) -> Inbound:
    return await pair.endpoint.receive(CallbackQuery.from_arguments(post.query), post.body)


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=40, deadline=None)
@given(content=contents)
def test_text_round_trip(mode: Mode, content: str) -> None:
    pair = Pair(mode)
    inbound = asyncio.run(receive(pair, pair.platform.text(OPENID, content, msg_id=42)))
    assert isinstance(inbound.message, TextMessage)
    assert inbound.message.content == as_parsed(content)
    assert inbound.message.from_user == OPENID
    assert inbound.message.msg_id == 42
    body = pair.endpoint.reply(inbound, text_reply(inbound.message, content, NOW))
    opened = pair.platform.open_reply(body.encode())
    assert opened is not None
    assert (opened.msg_type, opened.content) == ("text", as_parsed(content))
    assert (opened.to_user, opened.from_user) == (OPENID, pair.platform.original_id)
    assert opened.created == NOW


async def test_reply_is_encrypted_only_in_safe_mode(pair: Pair) -> None:
    inbound = await receive(pair, pair.platform.text(OPENID, "余额"))
    body = pair.endpoint.reply(inbound, text_reply(inbound.message, "123.45 元", NOW))
    assert ("<Encrypt>" in body) == (pair.endpoint.account.mode == "safe")
    assert ("123.45" in body) == (pair.endpoint.account.mode != "safe")


async def test_news_round_trip(pair: Pair) -> None:
    inbound = await receive(pair, pair.platform.event(OPENID, "CLICK", "BOOKS"))
    articles = [
        Article(f"书 {i} ]]> 😀", f"描述 {i}", f"https://jnu.fm/b/{i}", f"https://jnu.fm/p/{i}.jpg")
        for i in range(8)
    ]
    body = pair.endpoint.reply(inbound, news_reply(inbound.message, articles, NOW))
    opened = pair.platform.open_reply(body.encode())
    assert opened is not None
    assert opened.msg_type == "news"
    assert opened.articles == tuple(articles)


def test_news_reply_holds_one_to_eight_articles() -> None:
    message = TextMessage("gh_0123456789ab", OPENID, NOW, 1, "图书")
    with pytest.raises(ValueError, match="1 to 8"):
        news_reply(message, [], NOW)
    with pytest.raises(ValueError, match="1 to 8"):
        news_reply(message, [Article("t")] * 9, NOW)


async def test_success_is_never_sealed(pair: Pair) -> None:
    inbound = await receive(pair, pair.platform.event(OPENID, "unsubscribe"))
    assert pair.endpoint.reply(inbound, SUCCESS) == "success"
    assert pair.platform.open_reply(b"success") is None
    assert pair.platform.open_reply(b"") is None


async def test_events_are_typed(pair: Pair) -> None:
    platform = pair.platform
    cases = [
        (platform.event(OPENID, "subscribe"), SubscribeEvent, ""),
        (platform.event(OPENID, "subscribe", "qrscene_7"), SubscribeEvent, "qrscene_7"),
        (platform.event(OPENID, "unsubscribe"), UnsubscribeEvent, None),
        (platform.event(OPENID, "CLICK", "BALANCE"), MenuClick, "BALANCE"),
        (platform.event(OPENID, "VIEW", "https://jnu.fm/"), MenuView, "https://jnu.fm/"),
    ]
    for post, kind, key in cases:
        message = (await receive(pair, post)).message
        assert type(message) is kind
        assert message.from_user == OPENID
        if isinstance(message, SubscribeEvent):
            assert message.event_key == key
        elif isinstance(message, MenuClick):
            assert message.key == key
        elif isinstance(message, MenuView):
            assert message.url == key


async def test_other_messages_are_unsupported_with_their_msg_id(pair: Pair) -> None:
    image = pair.platform.post(
        OPENID, {"MsgType": "image", "PicUrl": "http://x/1.jpg", "MediaId": "m", "MsgId": 77}
    )
    message = (await receive(pair, image)).message
    assert message == UnsupportedMessage(
        "gh_0123456789ab", OPENID, NOW, msg_type="image", event="", msg_id=77
    )
    location = pair.platform.event(OPENID, "LOCATION")
    message = (await receive(pair, location)).message
    assert isinstance(message, UnsupportedMessage)
    assert (message.msg_type, message.event, message.msg_id) == ("event", "LOCATION", None)


async def test_url_verification_answers_echostr(pair: Pair) -> None:
    query = pair.platform.url_check("8237426731552896")
    answer = await pair.endpoint.verify_url(CallbackQuery.from_arguments(query))
    assert answer == "8237426731552896"


# -- refusals ------------------------------------------------------------------------


async def test_forged_signature_refused(pair: Pair) -> None:
    post = pair.platform.text(OPENID, "余额")
    for forged in ("0" * 40, "", post.query["signature"].upper()):
        with pytest.raises(BadSignature):
            await receive(pair, SignedPost({**post.query, "signature": forged}, post.body))
    other = {**post.query, "nonce": "123"}
    with pytest.raises(BadSignature):
        await receive(pair, SignedPost(other, post.body))


async def test_forged_url_check_refused(pair: Pair) -> None:
    query = pair.platform.url_check("echo")
    with pytest.raises(BadSignature):
        await pair.endpoint.verify_url(
            CallbackQuery.from_arguments({**query, "signature": "f" * 40})
        )


@pytest.mark.parametrize("mode", ["compatible", "safe"])
async def test_forged_msg_signature_refused(mode: Mode) -> None:
    pair = Pair(mode)
    post = pair.platform.text(OPENID, "余额")
    for forged in ("0" * 40, ""):
        with pytest.raises(BadSignature):
            await receive(pair, SignedPost({**post.query, "msg_signature": forged}, post.body))
    without = {k: v for k, v in post.query.items() if k != "encrypt_type"}
    with pytest.raises(BadSignature):
        await receive(pair, SignedPost(without, post.body))


@pytest.mark.parametrize("mode", ["compatible", "safe"])
async def test_wrong_app_id_refused(mode: Mode) -> None:
    pair = Pair(mode)
    stranger = SimulatedPlatform(account(mode, app_id="wx0000000000000000"), clock=pair.clock)
    with pytest.raises(WrongAppId):
        await receive(pair, stranger.text(OPENID, "余额"))


def _resealed(pair: Pair, post: SignedPost, encrypted: str) -> SignedPost:
    """post with its ciphertext replaced, validly signed (so only decryption can refuse)."""
    query = dict(post.query)
    query["msg_signature"] = sign(TOKEN, query["timestamp"], query["nonce"], encrypted)
    body = (
        b"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA["
        + encrypted.encode()
        + b"]]></Encrypt></xml>"
    )
    return SignedPost(query, body)


def _ciphertext(post: SignedPost) -> str:
    return post.body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0].decode()


async def test_tampered_ciphertext_refused() -> None:
    pair = Pair("safe")
    post = pair.platform.text(OPENID, "余额")
    raw = base64.b64decode(_ciphertext(post))
    flipped = base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode()
    # Tampered without re-signing: the message signature no longer matches.
    tampered = post.body.replace(_ciphertext(post).encode(), flipped.encode())
    with pytest.raises(BadSignature):
        await receive(pair, SignedPost(post.query, tampered))
    # Tampered and re-signed (by a holder of the token): decryption refuses what is not whole.
    for bad in (
        "not base64!",
        "",
        base64.b64encode(raw[:-5]).decode(),
        base64.b64encode(raw[:-32]).decode() if len(raw) > 32 else "AAAA",
    ):
        with pytest.raises((UndecryptableMessage, MalformedMessage)):
            await receive(pair, _resealed(pair, post, bad))


@pytest.mark.parametrize(
    "padding",
    [bytes(32), bytes([33]) * 32, bytes(31) + b"\x05", bytes([3]) * 31 + b"\x04"],
    ids=["zero", "beyond-block", "inconsistent", "short-run"],
)
async def test_bad_padding_refused(padding: bytes) -> None:
    pair = Pair("safe")
    post = pair.platform.text(OPENID, "余额")
    body = bytes(16) + (6).to_bytes(4, "big") + b"<xml/>" + APP_ID.encode()
    plain = body + b"x" * (-len(body) % 32) + padding
    with pytest.raises(UndecryptableMessage, match="padding"):
        await receive(pair, _resealed(pair, post, encrypt_unpadded(plain)))


async def test_length_field_beyond_plaintext_refused() -> None:
    pair = Pair("safe")
    post = pair.platform.text(OPENID, "余额")
    for plain, why in (
        (bytes(16) + (1000).to_bytes(4, "big") + b"<xml/>" + APP_ID.encode(), "length"),
        (bytes(10), "header"),
    ):
        with pytest.raises(UndecryptableMessage, match=why):
            await receive(pair, _resealed(pair, post, seal_raw(plain)))


def test_cipher_alone_refuses_another_app_id() -> None:
    sealed = MessageCipher(ENCODING_AES_KEY, "wx0000000000000000").encrypt(b"<xml/>")
    with pytest.raises(WrongAppId):
        MessageCipher(ENCODING_AES_KEY, APP_ID).decrypt(sealed)
    # A prefix of the right app id is not the app id.
    sealed = MessageCipher(ENCODING_AES_KEY, APP_ID[:-1]).encrypt(b"<xml/>")
    with pytest.raises(WrongAppId):
        MessageCipher(ENCODING_AES_KEY, APP_ID).decrypt(sealed)


@pytest.mark.parametrize("shift", [-301.0, 301.0, -86400.0])
async def test_timestamp_outside_window_refused(pair: Pair, shift: float) -> None:
    post = pair.platform.text(OPENID, "余额", timestamp=int(T0 + shift))
    with pytest.raises(StaleTimestamp):
        await receive(pair, post)


async def test_timestamp_at_the_window_edge_accepted(pair: Pair) -> None:
    post = pair.platform.text(OPENID, "余额", timestamp=int(T0 - 300))
    assert isinstance((await receive(pair, post)).message, TextMessage)


async def test_malformed_timestamp_refused(pair: Pair) -> None:
    for stamp in ("", "abc", "1e9", "-5", "1" * 13):
        query = {"signature": sign(TOKEN, stamp, "77"), "timestamp": stamp, "nonce": "77"}
        with pytest.raises(StaleTimestamp):
            await pair.endpoint.verify_url(CallbackQuery.from_arguments(query))


async def test_replayed_request_refused(pair: Pair) -> None:
    post = pair.platform.text(OPENID, "余额", nonce="123456789")
    await receive(pair, post)
    pair.clock.now += 299
    with pytest.raises(ReplayedNonce):
        await receive(pair, post)
    # The same nonce with another timestamp is another request WeChat signed.
    again = pair.platform.text(OPENID, "余额", nonce="123456789", timestamp=int(pair.clock.now))
    assert isinstance((await receive(pair, again)).message, TextMessage)


async def test_replay_after_the_window_is_stale(pair: Pair) -> None:
    post = pair.platform.text(OPENID, "余额")
    await receive(pair, post)
    pair.clock.now += 301
    with pytest.raises(StaleTimestamp):
        await receive(pair, post)


async def test_replayed_url_check_refused(pair: Pair) -> None:
    query = CallbackQuery.from_arguments(pair.platform.url_check("echo"))
    await pair.endpoint.verify_url(query)
    with pytest.raises(ReplayedNonce):
        await pair.endpoint.verify_url(query)


async def test_refused_request_does_not_use_up_its_nonce(pair: Pair) -> None:
    post = pair.platform.text(OPENID, "余额")
    with pytest.raises(MalformedMessage):
        await receive(pair, SignedPost(post.query, b"<xml><broken"))
    assert isinstance((await receive(pair, post)).message, TextMessage)


async def test_oversize_body_refused(pair: Pair) -> None:
    post = pair.platform.text(OPENID, "余" * 30_000)
    assert len(post.body) > 64 * 1024
    with pytest.raises(BodyTooLarge):
        await receive(pair, post)


async def test_smaller_cap_applies() -> None:
    clock = Clock()
    endpoint = AccountEndpoint(
        account("plain"), ReplayGuard(MemoryNonceStore(), 300.0, clock), max_body_bytes=1024
    )
    platform = SimulatedPlatform(account("plain"), clock=clock)
    post = platform.text(OPENID, "x" * 1100)
    with pytest.raises(BodyTooLarge):
        await endpoint.receive(CallbackQuery.from_arguments(post.query), post.body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>u</FromUserName>
<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol4;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>u</FromUserName>
<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">
<xml><ToUserName>gh_0123456789ab</ToUserName></xml>"""


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
async def test_xml_bombs_refused_in_the_body(pair: Pair, bomb: bytes) -> None:
    post = pair.platform.text(OPENID, "余额")
    with pytest.raises(MalformedMessage, match="DTD or entities"):
        await receive(pair, SignedPost(post.query, bomb))


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, EXTERNAL_ENTITY])
async def test_xml_bombs_refused_inside_the_ciphertext(bomb: bytes) -> None:
    pair = Pair("safe")
    post = pair.platform.text(OPENID, "余额")
    encrypted = MessageCipher(ENCODING_AES_KEY, APP_ID).encrypt(bomb)
    with pytest.raises(MalformedMessage, match="DTD or entities"):
        await receive(pair, _resealed(pair, post, encrypted))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<xml><ToUserName>a</ToUserName>",
        b"<message><MsgType>text</MsgType></message>",
        b"<xml><MsgType>text</MsgType><MsgType>event</MsgType></xml>",
        b"\xff\xfe<\x00x\x00",
        "<xml><Content>é</Content></xml>".encode("latin-1"),
    ],
)
async def test_malformed_xml_refused(body: bytes) -> None:
    pair = Pair("plain")
    post = pair.platform.text(OPENID, "余额")
    with pytest.raises(MalformedMessage):
        await receive(pair, SignedPost(post.query, body))


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"MsgType": "text", "MsgId": 1}, "Content"),
        ({"MsgType": "text", "Content": "x"}, "MsgId"),
        ({"MsgType": "text", "Content": "x", "MsgId": "abc"}, "MsgId"),
        ({"MsgType": "text", "Content": "x", "MsgId": str(2**64)}, "MsgId"),
        ({"Content": "x", "MsgId": 1}, "MsgType"),
        ({"MsgType": "event"}, "Event"),
    ],
)
async def test_missing_or_invalid_fields_refused(
    pair: Pair, fields: dict[str, str | int], missing: str
) -> None:
    with pytest.raises(MalformedMessage, match=missing):
        await receive(pair, pair.platform.post(OPENID, fields))


async def test_invalid_openid_refused(pair: Pair) -> None:
    with pytest.raises(MalformedMessage, match="FromUserName"):
        await receive(pair, pair.platform.text("bad openid <>", "余额"))


async def test_safe_mode_reads_the_ciphertext_not_a_plaintext_copy() -> None:
    pair = Pair("safe")
    post = pair.platform.text(OPENID, "余额")
    # A plaintext field slipped in beside <Encrypt> changes nothing.
    body = post.body.replace(b"<xml>", b"<xml><Content><![CDATA[forged]]></Content>")
    message = (await receive(pair, SignedPost(post.query, body))).message
    assert isinstance(message, TextMessage)
    assert message.content == "余额"


async def test_ciphertext_for_another_account_refused() -> None:
    pair = Pair("safe")
    post = pair.platform.text(OPENID, "余额")
    body = post.body.replace(b"gh_0123456789ab", b"gh_ffffffffffff")
    with pytest.raises(MalformedMessage, match="another account"):
        await receive(pair, SignedPost(post.query, body))


async def test_plaintext_reply_refused_by_wechat_in_safe_mode() -> None:
    pair = Pair("safe")
    inbound = await receive(pair, pair.platform.text(OPENID, "余额"))
    with pytest.raises(MalformedMessage, match="plaintext reply"):
        pair.platform.open_reply(text_reply(inbound.message, "1", NOW).encode())


async def test_forged_reply_signature_refused() -> None:
    pair = Pair("safe")
    inbound = await receive(pair, pair.platform.text(OPENID, "余额"))
    body = pair.endpoint.reply(inbound, text_reply(inbound.message, "1", NOW))
    forged = body.replace(body.split("<MsgSignature><![CDATA[")[1][:40], "0" * 40)
    with pytest.raises(BadSignature):
        pair.platform.open_reply(forged.encode())


# -- anything else is a WeChatError, never another exception --------------------------

QUERY_KEYS = ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature")


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=60, deadline=None)
@given(
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=50)),
    body=st.binary(max_size=300),
)
def test_any_request_is_served_or_refused_with_a_wechat_error(
    mode: Mode, query: dict[str, str], body: bytes
) -> None:
    pair = Pair(mode)
    with pytest.raises(WeChatError):
        asyncio.run(pair.endpoint.receive(CallbackQuery.from_arguments(query), body))
    with pytest.raises(WeChatError):
        asyncio.run(pair.endpoint.verify_url(CallbackQuery.from_arguments(query)))


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_body_under_a_valid_signature_is_served_or_refused(
    mode: Mode, data: st.DataObject
) -> None:
    pair = Pair(mode)
    post = pair.platform.text(OPENID, "余额")
    # Keep the query signed; replace, cut or corrupt the body.
    body = data.draw(
        st.one_of(
            st.binary(max_size=400),
            st.integers(0, len(post.body)).map(lambda n: post.body[:n]),
            st.tuples(st.integers(0, len(post.body) - 1), st.integers(0, 255)).map(
                lambda change: (
                    post.body[: change[0]] + bytes([change[1]]) + post.body[change[0] + 1 :]
                )
            ),
        )
    )
    try:
        inbound = asyncio.run(pair.endpoint.receive(CallbackQuery.from_arguments(post.query), body))
    except WeChatError:
        return
    assert inbound.message.from_user


@settings(max_examples=100, deadline=None)
@given(encrypted=st.text(max_size=200))
def test_any_ciphertext_decrypts_or_is_refused(encrypted: str) -> None:
    with pytest.raises(UndecryptableMessage):
        MessageCipher(ENCODING_AES_KEY, APP_ID).decrypt(encrypted)


@pytest.mark.parametrize("stamp", ["999999999999", "0"])
async def test_create_time_out_of_range_refused(stamp: str) -> None:
    pair = Pair("plain")
    post = pair.platform.text(OPENID, "余额")
    old, new = f"<CreateTime>{int(T0)}<", f"<CreateTime>{stamp}<"
    body = post.body.replace(old.encode(), new.encode())
    if stamp == "0":
        message = (await receive(pair, SignedPost(post.query, body))).message
        assert message.created == datetime(1970, 1, 1, tzinfo=UTC)
    else:
        with pytest.raises(MalformedMessage, match="CreateTime"):
            await receive(pair, SignedPost(post.query, body))
