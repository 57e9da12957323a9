"""A replica of the 2013 jnu.fm card API: Flask on gevent's WSGI server.

    python -m bench.baselines.replica2013 --port 9001 --school http://127.0.0.1:8013

It does per query what the 2013 server did: a fresh login from scratch with
`requests` (home page, captcha, keypad image, login POST), then the account
page, and the balance cut out of it with a regular expression. No cache, no
timeouts, no error handling: whatever goes wrong (a 500 page from the school,
a login page where the account page was expected) ends in an exception, which
Flask answers with its own HTTP 500. Only the keypad reading comes from
jnufm (`school.keypad`), because the 2013 recogniser was written for the real
keypad images, not the simulator's.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

import requests  # noqa: E402
from flask import Flask, request  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from school.keypad import decode_keypad, map_password  # noqa: E402

app = Flask(__name__)
SCHOOL = "http://127.0.0.1:8013"


def login(stuid: str, password: str) -> requests.Session:
    s = requests.Session()
    s.get(SCHOOL + "/homeLogin.action")
    s.get(SCHOOL + "/getCheckpic.action?rand=8000")
    img = s.get(SCHOOL + "/getpasswdPhoto.action").content
    cells = decode_keypad(img)
    s.post(
        SCHOOL + "/loginstudent.action",
        data={
            "loginType": "2",
            "name": stuid,
            "passwd": map_password(password, cells),
            "rand": "8000",
            "userType": "1",
        },
    )
    return s


@app.route("/card/rest")
def card_rest() -> str:
    stuid = request.args.get("stuid", "")
    password = request.args.get("password") or stuid[-6:]
    s = login(stuid, password)
    page = s.get(SCHOOL + "/accountcardUser.action").content.decode("gbk")
    balance = re.search(r"([\d.]+)元", page).group(1)  # type: ignore[union-attr]
    return json.dumps({"data": balance})


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
    # pywsgi writes one access line per request to stderr; the harness counts them.
    server = WSGIServer((args.host, args.port), app, log=sys.stderr, error_log=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
