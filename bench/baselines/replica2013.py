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

Two more 2013 endpoints, as 2013's `app.py`, `jwckit/` and `jnulib/book.py` did them:

- `/class/get?user=&password=&year=&term=` (the academic office, at `--school`
  + /jwc): a fresh `requests` session per query; GET login.aspx (its
  `__VIEWSTATE`, `__EVENTVALIDATION` and `btnLogin` kept once); then up to 10
  times: GET ValidateCode.aspx, read it with 2013's template method
  (bench/baselines/jwc_captcha2013.py), POST the login (the redirect followed,
  as `requests` does) and judge the answer by its Content-Length as 2013 did
  (2013 compared it with the real office's 7819 = wrong password, 1325 =
  logged in, 8792 = wrong captcha; here `--jwc-lengths` gives the simulator's
  lengths of the same three pages; any other length: try again; without
  `--jwc-lengths`, by the page's content). After a wrong password or 10 tries
  2013's login returned a string, and the timetable code then failed on it
  (here too: HTTP 500). Then GET and POST the timetable form
  (Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx: year `2012-2013`, the term name in
  GBK, the view state fields and the `bthSearch` button as 2013 posted them)
  and parse the rows of the page's first table (`tr.DGItemStyle`, then
  `tr.DGAlternatingItemStyle`) into 2013's dict by course id, the schedule
  cell through 2013's `process_class_text2`. 2013 wrote its URLs with a double
  slash (`http://202.116.0.176//Secure/...`), which IIS took; the simulator's
  routes do not, so the replica writes one. 2013 built request headers (a
  User-agent, a Referer) but never sent them; neither does the replica.
- `/book/search/<anything>?query=&page=&available=` (the main catalogue, at
  `--school` + /opac): one GET of the INNOPAC search URL with a fresh `requests`
  session, the result rows parsed as 2013 did (here with selectolax instead of
  BeautifulSoup 3). A query with one hit gets the record page from the
  catalogue, which has no result rows: 2013 answered an empty list, so does
  the replica. `iszh=1` (the Zhuhai ILAS) is not replicated (HTTP 500).

No cache, no timeouts, no error handling, in any of them.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urljoin  # noqa: E402

import requests  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from PIL import Image  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402

from bench.baselines import jwc_captcha2013  # noqa: E402

app = Flask(__name__)
SCHOOL = "http://127.0.0.1:8013"
JWC = SCHOOL + "/jwc"
OPAC = SCHOOL + "/opac"
# The login answer's Content-Length per verdict ("password", "ok", "captcha"), as
# 2013 hard-coded the real office's; empty: judge by the page's content instead.
LOGIN_LENGTHS: dict[str, str] = {}
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


# --- the academic office (2013: jwckit/func.py, jwckit/superprocessor.py, app.py) ------


def first(node: Any, selector: str) -> Any:
    """The first match or None: a missing element fails on use, as BeautifulSoup's find did."""
    return node.css_first(selector)


def _form_fields(html: str, wanted: tuple[str, ...]) -> dict[str, Any]:
    """2013: every <input>'s name (a KeyError on one without), the wanted ones' values."""
    form: dict[str, Any] = {}
    for node in LexborHTMLParser(html).css("input"):
        name = node.attributes["name"]
        if name in wanted:
            form[name] = (node.attributes["value"] or "").encode("utf-8")
    return form


def _login_verdict(r: Any) -> str:
    if LOGIN_LENGTHS:
        length = r.headers["Content-Length"]  # a KeyError without one, as 2013
        for verdict, expected in LOGIN_LENGTHS.items():
            if length == expected:
                return verdict
        return "other"
    text = r.text
    if "密码错误" in text:
        return "password"
    if "验证码错误" in text:
        return "captcha"
    if r.status_code == 200 and r.url.lower().endswith("/secure/default.aspx"):
        return "ok"
    return "other"


def jwc_login(username: str, password: str) -> Any:
    """2013's login: the session, or the string "password" or "unkwon" (sic)."""
    s = requests.Session()
    html = s.get(JWC + "/login.aspx").text
    form = _form_fields(html, ("__VIEWSTATE", "__EVENTVALIDATION", "btnLogin"))
    for _ in range(10):
        con = s.get(JWC + "/ValidateCode.aspx").content
        form["txtFJM"] = jwc_captcha2013.read(con)
        form["txtYHBS"] = username
        form["txtYHMM"] = password
        verdict = _login_verdict(s.post(JWC + "/login.aspx", data=form))
        if verdict == "password":
            return "password"
        if verdict == "ok":
            return s
    return "unkwon"


def _split_ex(a: str) -> list[str]:
    for sep in ("①", "②", ";", "③", "④", "⑤", "⑥", "⑦", "⑧", "⑨", "⑩"):
        a = a.replace(sep, "分割符")
    return [c for c in a.split("分割符") if c != ""]


def _weekday(text: str) -> int | None:
    for day, name in enumerate(("周一", "周二", "周三", "周四", "周五", "周六", "周日"), 1):
        if name in text:
            return day
    return None


def _odd_even_weeks(text: str) -> set[int]:
    if text.find("双周") > -1:
        return {i for i in range(1, 17) if i % 2 == 0}
    if text.find("单周") > -1:
        return {i for i in range(1, 17) if i % 2 == 1}
    return set(range(1, 17))


def _range_weeks(text: str) -> set[int]:
    if text.find("(") > -1:
        begin, end = map(int, text[text.index("(") + 1 : text.index(")")].split("-"))
        return set(range(begin, end + 1))
    return set(range(1, 17))


def _class_text(x: str) -> list[tuple[list[int], int | None, list[str]]]:
    out = []
    for segment in _split_ex(x):
        try:
            weeks = sorted(_odd_even_weeks(segment) & _range_weeks(segment))
            nodes = segment.split(" - ")[1][:-1].split(",")
            out.append((weeks, _weekday(segment), nodes))
        except Exception:  # noqa: S112 - 2013 skipped what it could not read
            continue
    return out


def process_class_text2(text: str, position: str) -> list[dict[str, Any]]:
    """2013's schedule cell reader: 16-week strings, weekday, periods, place."""
    places = _split_ex(position)
    meetings = _class_text(text)
    if len(meetings) > len(places):
        places = places * len(meetings)
    return [
        {
            "week": "".join("1" if w in weeks else "0" for w in range(1, 17)),
            "weekday": weekday,
            "node": ",".join(nodes),
            "position": place,
        }
        for (weeks, weekday, nodes), place in zip(meetings, places, strict=False)
    ]


TIMETABLE = "/Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx"
COLUMNS = [
    "class", "id", "name", "score", "???", "type",
    "时间安排", "teacher", "position", "more", "阶段", "考试时间",
]  # fmt: skip


def get_xls(s: Any, year: int, term: int) -> dict[str, Any]:
    """2013's timetable query on a logged-in session (a string here fails, as in 2013)."""
    terms = [b"", "第一学期".encode("gbk"), "第二学期".encode("gbk")]
    form = _form_fields(
        s.get(JWC + TIMETABLE).text, ("__VIEWSTATE", "__EVENTVALIDATION", "bthSearch")
    )
    form["dlstXndZ0"] = form["dlstXndZ"] = f"{year}-{year + 1}"
    form["dlstNdxq"] = form["dlstNdxq0"] = terms[term]
    html = s.post(JWC + TIMETABLE, data=form).text
    table = first(LexborHTMLParser(html), "table")
    rows = table.css("tr.DGItemStyle") + table.css("tr.DGAlternatingItemStyle")
    ret: dict[str, Any] = {}
    for row in rows:
        values = ["".join(c for c in td.text() if c != "\xa0") for td in row.css("td")]
        course = dict(zip(COLUMNS, values, strict=False))
        ret[course["id"]] = course
    for course in ret.values():
        schedule, place = course.pop("时间安排"), course["position"]
        del course["阶段"], course["考试时间"], course["???"]
        course["time"] = process_class_text2(schedule, place)
    return ret


@app.route("/class/get", methods=["GET", "POST"])
def class_get() -> Any:
    user = request.args["user"]
    password = request.args["password"]
    year, term = int(request.args["year"]), int(request.args["term"])
    return jsonify(version=1.0, data=get_xls(jwc_login(user, password), year, term))


# --- the main library catalogue (2013: jnulib/book.py) -------------------------------


def _text_after_title(left: Any) -> str:
    try:
        found = re.findall(r'<span class="briefcitTitle">(.*?)<br\s*/?>(.*?)-->', left.html, re.S)[
            0
        ][1]
    except Exception:
        return ""
    return str(found)


@app.route("/book/search/<search_string>", methods=["GET", "POST"])
def book_search(search_string: str) -> Any:
    s = requests.Session()
    search_string = request.args.get("query", search_string)
    page = request.args.get("page", "1")
    need_limit = int(request.args.get("available", "0"))
    if request.args.get("iszh", "0") == "1":
        raise NotImplementedError("the Zhuhai ILAS search is not replicated")
    start = 1 + (int(page) - 1) * 12
    limit = ["", "availlim/"][need_limit]
    q = search_string
    r = s.get(
        f"{OPAC}/{limit}search~S1*chx?/X({q})&SORT=D/X({q})&SORT=D&SUBKEY=({q})/{start},40,40,B/browse"
    )
    total_list = []
    for tot in LexborHTMLParser(r.text).css("td.briefCitRow"):
        dic: dict[str, Any] = {"position": []}
        left = first(tot, 'td[align="left"].briefcitDetail')
        can = exist = 0
        text = _text_after_title(left)
        for item in left.css("tr.bibItemsEntry"):
            line = ""
            for td in item.css("td"):
                link = first(td, "a")
                if link is not None:
                    line += link.text() + " "
                else:
                    line += td.text().split("-->")[0].split("\xa0")[1]
                    if line.find("在架上") >= 0:
                        can = 1
                    # 2013's precedence: find() is -1 (true) when not found.
                    if line.find("在架上") or line.find("馆内阅览") >= 0:
                        exist = 1
            dic["position"].append(line)
        dic["detail"] = left.css("div.briefcitItems")[1].text()
        dic["checkout"] = can
        dic["lookup"] = exist
        temp = text.split("\n")
        try:
            dic["author"] = temp[1].replace("/ ", "")
            dic["publish"] = temp[2].replace("\\u00a0", "")  # sic: a no-op in 2013
            dic["size"] = temp[3].replace("<!--", "")
            dic["year"] = temp[5].split("<")[0]
        except IndexError:
            pass
        title = first(first(left, "span.briefcitTitle"), "a")
        dic["url"] = urljoin(OPAC + "/search*chx/", title.attributes["href"])
        dic["title"] = title.text()
        dic["status"] = first(left, "span.briefcitStatus").text()
        try:
            src = first(tot.css('td[align="center"]')[1], "img").attributes["src"]
            isbn = src.split("=")[1].split("&")[0]
            dic["isbn"] = isbn
            dic["image"] = f"http://book.bookday.cn/book/cover?isbn={isbn}&w=67&h=97"
            dic["douban"] = f"http://book.douban.com/isbn/{isbn}/"
        except Exception:  # noqa: S110 - 2013 went on without a cover
            pass
        total_list.append(dic)
    return jsonify(version=1.0, data=total_list)


@app.route("/healthz")
def healthz() -> str:
    return json.dumps({"pid": os.getpid()})


def main() -> None:
    global SCHOOL, JWC, OPAC
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--school", required=True)
    parser.add_argument(
        "--jwc-lengths",
        default="",
        help="password=N,ok=N,captcha=N: the office's login answers by Content-Length",
    )
    args = parser.parse_args()
    SCHOOL = args.school.rstrip("/")
    JWC, OPAC = SCHOOL + "/jwc", SCHOOL + "/opac"
    if args.jwc_lengths:
        for part in args.jwc_lengths.split(","):
            verdict, _, length = part.partition("=")
            LOGIN_LENGTHS[verdict] = length
    load_templates()
    jwc_captcha2013.templates()
    # pywsgi writes one access line per request to stderr; the harness counts them.
    server = WSGIServer((args.host, args.port), app, log=sys.stderr, error_log=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
