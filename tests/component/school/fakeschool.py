"""A tiny scripted card center on 127.0.0.1 for client tests (no simulator needed).

It serves the saved pages of the 2013 markup (tests/fixtures/card_pages/),
keypads made of the real sample's pixels, and lets a test replace the answer
of any path to script redirects, cookies, errors and broken connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from tests.unit.school.keypad_render import arrange, encode, shuffled_keys

PAGES = Path(__file__).resolve().parents[2] / "fixtures" / "card_pages"
GBK_TYPE = "text/html;charset=GBK"
PAGE_SIZE = 10
# What the saved account page shows (tests/fixtures/card_pages/account.html).
FIXTURE_STUDENT, FIXTURE_NAME = "2012052690", "邓华敏"

Row = tuple[str, str, str, str, str]  # time, way, place, amount, balance after


def fixture(name: str) -> bytes:
    """A saved card center page, as bytes."""
    return (PAGES / name).read_bytes()


def login_page(error: str = "") -> bytes:
    """The login page, with an error message if given."""
    text = fixture("login.html").decode("gbk")
    if error:
        text = text.replace("</form>\n", f'</form>\n<p class="biaotou">{error}</p>\n')
    return text.encode("gbk")


def result_page(rows: list[Row], page: int, pager: bool = False, total: bool = False) -> bytes:
    """Page `page` (10 rows each) of rows in the 2013 markup; optionally a pager row."""
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    trs = "".join(
        f'<tr class="{"listbg" if i % 2 == 0 else "listbg2"}"><td>{t}</td><td>{way}</td>'
        f"<td>{place}</td><td>{amount}</td><td>{rest}</td><td>{900 - i}</td><td>正常</td></tr>\r\n"
        for i, (t, way, place, amount, rest) in enumerate(chunk)
    )
    counted = f"共{len(rows)}条记录&nbsp;&nbsp;" if total else ""
    pager_row = (
        f'<tr class="bl"><td colspan="7"><div align="center">{counted}'
        f"共{pages}页&nbsp;&nbsp;当前第{page}页</div></td></tr>\r\n"
        if pager
        else ""
    )
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk">'
        "<title>流水查询结果</title></head><body>\r\n"
        "<table><tr><td>交易发生时间</td><td>交易类型</td><td>子系统名称</td><td>交易额</td>"
        f"<td>现有余额</td><td>次数</td><td>状态</td></tr>\r\n{trs}{pager_row}</table>\r\n"
        '<form name="pageForm" action="/accountconsubBrows.action" method="post">'
        f'<input type="hidden" name="pageNum" value="{page}"></form>\r\n'
        "</body></html>\r\n"
    )
    return html.encode("gbk")


def make_rows(count: int, day: str = "2013/08/24") -> list[Row]:
    """count plausible rows, newest first, all on day."""
    rows = []
    for i in range(count):
        minute = 59 - (i % 60)
        hour = 23 - i // 60
        rows.append(
            (
                f"{day} {hour:02d}:{minute:02d}:07",
                "持卡人消费",
                "第一饭堂",
                "-1.50",
                f"{100 + i * 1.5:.2f}",
            )
        )
    return rows


@dataclass
class Request:
    """One request as the fake school saw it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def cookies(self) -> dict[str, str]:
        pairs = (part.strip().partition("=") for part in self.headers.get("cookie", "").split(";"))
        return {name: value for name, _, value in pairs if name}

    @property
    def cookie(self) -> str | None:
        return self.cookies.get("JSESSIONID")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("ascii"), keep_blank_values=True, encoding="gbk"))


@dataclass
class Response:
    """What to answer: a page, or a slow/trickled answer, or a reset connection."""

    body: bytes = b""
    status: int = 200
    content_type: str = GBK_TYPE
    set_cookie: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    trickle: float = 0.0  # seconds between body bytes
    reset: bool = False
    close: bool = False  # close the connection after answering
    declared_length: int | None = None


Handler = Callable[[Request], Response | Awaitable[Response]]


@dataclass
class Session:
    captcha: bool = False
    keys: list[str] | None = None
    student: str | None = None
    last_rows: list[Row] | None = None
    history_step: int = 0


@dataclass
class FakeSchool:
    """A card center good enough for the client's happy paths, with per-path overrides."""

    students: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"2012052690": ("052690", "张三"), "2012000001": ("000001", "李四")}
    )
    today_rows: list[Row] = field(default_factory=lambda: make_rows(3))
    history_rows: list[Row] = field(default_factory=lambda: make_rows(12, "2013/08/20"))
    pager: bool = False
    overrides: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    url: str = ""
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)

    async def __aenter__(self) -> FakeSchool:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    # --- HTTP plumbing ---------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(method, target, headers, body)
                self.requests.append(request)
                handler = self.overrides.get(request.path, self._default)
                answer = handler(request)
                response = await answer if inspect.isawaitable(answer) else answer
                if not await self._write(writer, response):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _write(self, writer: asyncio.StreamWriter, response: Response) -> bool:
        if response.delay:
            await asyncio.sleep(response.delay)
        if response.reset:
            sock = writer.get_extra_info("socket")
            # Linger 0 makes close() send RST instead of FIN: a reset connection.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        length = (
            len(response.body) if response.declared_length is None else response.declared_length
        )
        head = [
            f"HTTP/1.1 {response.status} X",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {length}",
            "Server: Apache-Coyote/1.1",
        ]
        if response.set_cookie:
            head.append(f"Set-Cookie: JSESSIONID={response.set_cookie}; Path=/")
        head += [f"{name}: {value}" for name, value in response.headers]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if response.trickle:
            for i in range(len(response.body)):
                writer.write(response.body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(response.trickle)
        else:
            writer.write(response.body)
        await writer.drain()
        return not response.close

    # --- the card center --------------------------------------------------------

    def session_of(self, request: Request) -> tuple[Session, str | None]:
        """The request's session, or a new one and its new cookie."""
        cookie = request.cookie
        if cookie is not None and cookie in self.sessions:
            return self.sessions[cookie], None
        fresh = secrets.token_hex(16).upper()
        self.sessions[fresh] = Session()
        return self.sessions[fresh], fresh

    def _default(self, request: Request) -> Response:
        session, new_cookie = self.session_of(request)
        response = self.page(request, session)
        response.set_cookie = response.set_cookie or new_cookie
        return response

    def account_page(self, student: str) -> bytes:
        name = self.students[student][1]
        text = fixture("account.html").decode("gbk")
        return text.replace(FIXTURE_STUDENT, student).replace(FIXTURE_NAME, name).encode("gbk")

    def page(self, request: Request, session: Session) -> Response:
        path, form = request.path, request.form()
        if path in ("/", "/homeLogin.action"):
            return Response(login_page())
        if path == "/getCheckpic.action":
            session.captcha = True
            return Response(b"\x89PNG captcha", content_type="image/png")
        if path == "/getpasswdPhoto.action":
            session.keys = shuffled_keys(self.rng)
            return Response(encode(arrange(session.keys)), content_type="image/jpeg")
        if path == "/loginstudent.action":
            if not session.captcha or session.keys is None:
                return Response(login_page("验证码已过期，请刷新页面"))
            known = self.students.get(form.get("name", ""))
            if known is None:
                return Response(login_page("登陆失败，无此用户名称！"))
            sent = form.get("passwd", "")
            if "".join(session.keys[int(c)] for c in sent if c.isdigit()) != known[0]:
                return Response(login_page("登陆失败，密码错误"))
            session.student = form["name"]
            return Response(fixture("frame.html"))
        if session.student is None:
            return Response(login_page())
        if path == "/accountcardUser.action":
            return Response(self.account_page(session.student))
        if path == "/accounttodayTrjn.action":
            if request.method == "GET":
                return Response(fixture("today_form.html"))
            session.last_rows = self.today_rows
            return Response(result_page(self.today_rows, 1, self.pager))
        if path == "/accounthisTrjn.action":
            session.history_step = 1
            return Response(fixture("history_form.html"))
        if path == "/accounthisTrjn1.action" and session.history_step == 1:
            session.history_step = 2
            return Response(fixture("history_dates.html"))
        if path == "/accounthisTrjn2.action" and session.history_step == 2:
            session.history_step = 3
            return Response(fixture("history_wait.html"))
        if path == "/accounthisTrjn3.action" and session.history_step == 3:
            session.history_step = 0
            session.last_rows = self.history_rows
            return Response(result_page(self.history_rows, 1, self.pager))
        if path == "/accountconsubBrows.action" and session.last_rows is not None:
            rows = session.last_rows
            last = max(1, -(-len(rows) // PAGE_SIZE))
            # Like the simulator: a page past the end answers the last page.
            number = min(max(int(form["pageNum"]), 1), last)
            return Response(result_page(rows, number, self.pager))
        return Response(fixture("error_steps.html"))
