"""A replica of the 2013 jnu.fm card API: Flask on gevent's WSGI server.

    python -m bench.baselines.replica2013 --port 9001 --school http://127.0.0.1:8013

It does per query what the 2013 server did, in the 2013 client's order: a
fresh login from scratch with `requests` (home page, captcha, keypad image,
login POST, with the 2013 Host and Referer headers), then the account page, and
the balance cut out of it as 2013 did (the td.neiwen value cells, the first one
holding 余额, the text before its first 元; where 2013 answered a null balance,
the replica fails, as every failure in the 2013 log did). The keypad is read with the 2013
method: greyscale, threshold 118, twelve fixed 23 x 23 crops, and an exact MD5
match of each crop against the twelve 2013 templates (made here from the
template images, tests/fixtures/card-keypad/NM.png). No cache, no timeouts, no
error handling: whatever goes wrong (a 500 page from the school, a keypad crop
that matches no template, a login page where the account page was expected)
ends in an exception, which Flask answers with its own HTTP 500.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
from flask import Flask, request  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from PIL import Image  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402

app = Flask(__name__)
SCHOOL = "http://127.0.0.1:8013"
TEMPLATES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "card-keypad"
# What each 2013 template shows ("C" 清除, "X" 关闭), as the 2013 code's table has it.
TEMPLATE_KEYS = {
    "00": "7",
    "01": "1",
    "02": "4",
    "10": "2",
    "11": "6",
    "12": "8",
    "20": "3",
    "21": "5",
    "22": "9",
    "30": "0",
    "31": "C",
    "32": "X",
}
# The 2013 client replaced its session's headers with these two.
HEADERS = {"Host": "card.jnu.edu.cn:8080", "Referer": "http://card.jnu.edu.cn/platform/cc/index"}
KEY_OF_HASH: dict[str, str] = {}


def _binary(image: Image.Image) -> Image.Image:
    return image.convert("L").point([0 if i < 118 else 1 for i in range(256)], "1")


def load_templates() -> None:
    for name, key in TEMPLATE_KEYS.items():
        with Image.open(TEMPLATES / f"{name}.png") as image:
            KEY_OF_HASH[
                hashlib.md5(_binary(image).tobytes(), usedforsecurity=False).hexdigest()
            ] = key


def mix_password(s: requests.Session, password: str) -> str:
    """The 2013 keypad method: a KeyError on any crop that is not a template, bit for bit."""
    content = s.get(SCHOOL + "/getpasswdPhoto.action").content
    out = _binary(Image.open(io.BytesIO(content)))
    keys = []
    for n in range(4):
        for m in range(3):
            crop = out.crop((10 + 36 * m, 36 + 36 * n, 33 + 36 * m, 59 + 36 * n))
            keys.append(KEY_OF_HASH[hashlib.md5(crop.tobytes(), usedforsecurity=False).hexdigest()])
    cell_of = {key: "0123456789CX"[i] for i, key in enumerate(keys)}
    return "".join(cell_of[d] for d in password)


def login(stuid: str, password: str) -> requests.Session:
    s = requests.Session()
    s.headers = HEADERS.copy()  # type: ignore[assignment]
    s.get(SCHOOL + "/")
    s.get(SCHOOL + "/getCheckpic.action?rand=8000.")
    data = {
        "loginType": "2",
        "name": stuid,
        "passwd": mix_password(s, password),
        "rand": "8000",
        "userType": "1",
    }
    s.post(SCHOOL + "/loginstudent.action", data=data)
    return s


def person_data(s: requests.Session) -> list[str]:
    text = s.get(SCHOOL + "/accountcardUser.action").content.decode("gbk")
    cells = [td.text().replace("\xa0", " ") for td in LexborHTMLParser(text).css("td.neiwen")]
    return [c for c in cells if "：" not in c]


@app.route("/card/rest")
def card_rest() -> str:
    stuid = request.args.get("stuid", "")
    password = request.args.get("password") or stuid[-6:]
    s = login(stuid, password)
    # As 2013: the first value cell holding 余额, the text before its first 元.
    for cell in person_data(s):
        if "余额" in cell:
            return json.dumps({"data": cell.split("元")[0]})
    # 2013 answered {"data": null} here (a login that did not take). The 2013
    # log shows no such answer: all its failures were non-2xx with 21-byte
    # bodies (1013 = 37 x 20 + 13 x 21 bytes), gevent's "Internal Server Error",
    # i.e. exceptions. So, like the log, the one deviation: fail.
    raise LookupError("no balance on the account page")


@app.route("/healthz")
def healthz() -> str:
    return json.dumps({"pid": os.getpid()})


def main() -> None:
    global SCHOOL
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--school", required=True)
    args = parser.parse_args()
    SCHOOL = args.school.rstrip("/")
    load_templates()
    # pywsgi writes one access line per request to stderr; the harness counts them.
    server = WSGIServer((args.host, args.port), app, log=sys.stderr, error_log=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
