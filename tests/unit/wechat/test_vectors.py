"""Published examples: the bytes other implementations of WeChat's scheme agree on."""

from __future__ import annotations

import re

from pydantic import SecretStr

from channels.wechat.cipher import MessageCipher
from channels.wechat.config import WeChatAccount
from channels.wechat.endpoint import AccountEndpoint, CallbackQuery
from channels.wechat.messages import TextMessage
from channels.wechat.replay import MemoryNonceStore, ReplayGuard
from channels.wechat.signature import sign, signature_matches
from channels.wechat.wire import parse_fields

from .protocol_support import Clock


def test_url_signature_example() -> None:
    # From wechatpy's tests (tests/test_utils.py, test_check_signature_should_ok).
    assert sign("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
    assert signature_matches(
        "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff", "test", "1410685589", "test"
    )
    assert not signature_matches(
        "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe", "test", "1410685589", "test"
    )


# WeChat's own sample code for 消息加解密 (the Python demo of WXBizMsgCrypt, Sample.py,
# by Tencent, 2014): a compatible-mode POST, its msg_signature and its ciphertext.
SAMPLE_TOKEN = "spamtest"
SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_APP_ID = "wx2c2769f8efd9abc2"
SAMPLE_TIMESTAMP = "1409735669"
SAMPLE_NONCE = "1320562132"
SAMPLE_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6"
    "F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T33"
    "2jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCg"
    "avjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6Oewp"
    "usjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA["
    "oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content>"
    "<MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[" + SAMPLE_ENCRYPT + "]]></Encrypt></xml>"
).encode()


def test_sample_msg_signature() -> None:
    assert (
        sign(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT) == SAMPLE_MSG_SIGNATURE
    )


def test_sample_ciphertext_decrypts_to_the_plaintext_fields() -> None:
    xml = MessageCipher(SAMPLE_KEY, SAMPLE_APP_ID).decrypt(SAMPLE_ENCRYPT)
    fields = parse_fields(xml)
    assert fields["Content"] == "abcdteT"
    assert fields["FromUserName"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert fields["MsgId"] == "6054768590064713728"


async def test_sample_post_received_in_compatible_mode() -> None:
    account = WeChatAccount(
        name="sample",
        app_id=SAMPLE_APP_ID,
        mode="compatible",
        token=SecretStr(SAMPLE_TOKEN),
        encoding_aes_key=SecretStr(SAMPLE_KEY),
    )
    clock = Clock(float(SAMPLE_TIMESTAMP))
    endpoint = AccountEndpoint(account, ReplayGuard(MemoryNonceStore(), 300.0, clock), clock=clock)
    query = CallbackQuery(
        # The sample gives no URL signature; it is the one the test above checks.
        signature=sign(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE),
        timestamp=SAMPLE_TIMESTAMP,
        nonce=SAMPLE_NONCE,
        encrypt_type="aes",
        msg_signature=SAMPLE_MSG_SIGNATURE,
    )
    inbound = await endpoint.receive(query, SAMPLE_BODY)
    assert inbound.message == TextMessage(
        to_user="gh_10f6c3c3ac5a",
        from_user="oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        created=inbound.message.created,
        msg_id=6054768590064713728,
        content="abcdteT",
    )
    assert int(inbound.message.created.timestamp()) == 1409735668


# From wechatpy's tests (tests/test_crypto.py, for WeChat Work, whose scheme is the same
# with the corp id in the app id's place): an encryption with fixed random bytes, and a
# decryption.
WORK_TOKEN = "123456"
WORK_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
WORK_CORP_ID = "wx49f0ab532d5d035a"


def test_work_encryption_with_fixed_random_bytes() -> None:
    reply = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
        "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
        "<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    cipher = MessageCipher(WORK_KEY, WORK_CORP_ID, lambda n: b"1234567890123456"[:n])
    encrypted = cipher.encrypt(reply.encode())
    assert encrypted == (
        "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNc"
        "BqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY"
        "0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsV"
        "bwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAG"
        "VRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
    )
    signature = sign(WORK_TOKEN, "1411525903", "461056294", encrypted)
    assert signature == "407518b7649e86ef23978113f92d27afa9296533"


def test_work_decryption() -> None:
    encrypted = (
        "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHC"
        "rsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpX"
        "aG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQi"
        "MS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQi"
        "pvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
    )
    assert signature_matches(
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", WORK_TOKEN, "1411525903", "461056294", encrypted
    )
    fields = parse_fields(MessageCipher(WORK_KEY, WORK_CORP_ID).decrypt(encrypted))
    assert fields["Content"] == "test"
    assert fields["FromUserName"] == "messense"


def test_reply_envelope_has_the_documented_elements() -> None:
    # The safe-mode reply of WeChat's docs: <Encrypt>, <MsgSignature>, <TimeStamp>, <Nonce>.
    cipher = MessageCipher(WORK_KEY, WORK_CORP_ID, lambda n: b"1234567890123456"[:n])
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", cipher.encrypt(b"<xml/>"))
