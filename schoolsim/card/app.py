"""The Tornado application: card center pages behind the overload layer, plus /__sim/."""

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import tornado.web

from schoolsim.card import pages
from schoolsim.card.dataset import Row, Student, money
from schoolsim.card.keypad import render_captcha, render_keypad
from schoolsim.card.sessions import Session
from schoolsim.card.state import AppState
from schoolsim.overload import Mount, OverloadHandler, side_routes
from schoolsim.overload import SimHandler as BaseSimHandler
from schoolsim.variants import Variant, variant_for

COOKIE = "JSESSIONID"
# The load balancer's cookie (setting extra_cookie; not evidence).
EXTRA = "BIGipServercard_pool"
_DATE_RE = re.compile(r"^\d{8}$")
# Days of history the truth endpoint reports (before today).
TRUTH_HISTORY_DAYS = 14


def _no_log(handler: tornado.web.RequestHandler) -> None:
    """Keep the access log quiet: benchmarks send tens of thousands of requests."""


class SchoolHandler(OverloadHandler):
    """Base of every card center page: overload layer, sessions, GBK pages."""

    state: AppState
    # Extra latency multiplier of this page (login and history cost more).
    latency_kind = ""
    # Whose page this is, for its markup variant: the session's student, the name
    # posted to the login; "" before any (a `mixed` setting then writes plain).
    page_key = ""

    def set_default_headers(self) -> None:
        """Look like the 2013 Tomcat rather than Tornado."""
        self.set_header("Server", "Apache-Coyote/1.1")

    def error_page(self, status: int) -> str:
        """Tomcat's reports (500 overload and failures), Apache's 503 page when down."""
        return pages.unavailable_page() if status == 503 else pages.tomcat_error(status)

    def latency_factor(self) -> float:
        """This page's latency multiplier (login and history queries cost more)."""
        if self.latency_kind == "login":
            return self.state.settings.login_latency_factor
        if self.latency_kind == "history":
            return self.state.settings.history_latency_factor
        return 1.0

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Form values arrive in GBK (the pages' charset), e.g. Submit=+%C8%B7+%B6%A8+."""
        return value.decode("gb18030", errors="replace")

    def variant(self) -> Variant:
        """The markup variant of this request's page (schoolsim/variants.py)."""
        return variant_for(self.state.settings.variant, self.page_key)

    def html(self, body: str) -> None:
        """Send a GBK page, its charset declared as its variant declares it."""
        self.set_header("Content-Type", pages.content_type(self.variant()))
        self.finish(body.encode("gbk"))

    def session(self, always_cookie: bool = False) -> Session:
        """This request's session, a new one (with its cookies) if none is valid."""
        store = self.state.sessions
        settings = self.state.settings
        sess = store.get(self.get_cookie(COOKIE), settings.session_idle_s)
        if sess is not None and settings.extra_cookie and self.get_cookie(EXTRA) != sess.extra:
            # Without the balancer's cookie the request lands on another server,
            # which does not know the session.
            sess = None
        if sess is None:
            sess = store.create(settings.session_idle_s)
            always_cookie = True
        if sess.stuid:
            self.page_key = sess.stuid
        if always_cookie:
            self.set_cookie(COOKIE, sess.sid, path="/")
            if settings.extra_cookie:
                sess.extra = sess.extra or f"{self.state.rng.getrandbits(32)}.20480.0000"
                self.set_cookie(EXTRA, sess.extra, path="/")
        return sess

    def logged_in(self) -> tuple[Session, Student] | None:
        """The session and its student, or None after answering with the login page."""
        sess = self.session()
        st = self.state.dataset.student(sess.stuid) if sess.stuid else None
        if st is None:
            self.html(pages.login_page(variant=self.variant()))
            return None
        return sess, st

    def default_range(self) -> tuple[date, date]:
        """The date form's defaults: the 7 days before yesterday .. yesterday (guess)."""
        yesterday = self.displayed_today() - timedelta(days=1)
        return yesterday - timedelta(days=7), yesterday

    def accept_dates(self, sess: Session) -> bool:
        """Take the posted range, or answer the bad-date page and return False.

        A range may end today (evidence: 2013 asked today-7 .. today), but the
        history holds no row of today (evidence: a later client notes that a
        dated query cannot give today's rows; today is its own query).
        """
        start = _parse_day(self.arg("inputStartDate"))
        end = _parse_day(self.arg("inputEndDate"))
        if start is None or end is None or start > end or end > self.displayed_today():
            # The chain stays at the date form, so corrected dates may be posted again.
            sess.his_step = 2
            self.html(pages.error_page(pages.DATE_ERROR, self.variant()))
            return False
        sess.his_step = 3
        sess.his_range = (start, end)
        return True

    def arg(self, name: str) -> str:
        """A form field (body or query), empty if absent."""
        return self.get_argument(name, "").strip()

    def displayed_today(self) -> date:
        """Today by the card center's own clock."""
        return self.state.displayed_now().date()

    def today_result(self, sess: Session, st: Student, page: int) -> None:
        """A result page of today's rows, as of now."""
        today = self.displayed_today()
        state = self.state
        rows = state.dataset.rows(
            st, state.now(), state.settings.clock_offset_minutes, today, today
        )
        sess.last_range = None
        self.result(sess, st, rows, page)

    def history_result(self, sess: Session, st: Student, summary: str) -> None:
        """Result page 1 of the accepted range (without today's rows); the chain is used up."""
        assert sess.his_range is not None
        start, end = sess.his_range
        sess.his_step = 0
        sess.his_range = None
        last = min(end, self.displayed_today() - timedelta(days=1))
        state = self.state
        offset = state.settings.clock_offset_minutes
        rows = state.dataset.rows(st, state.now(), offset, start, last) if start <= last else []
        sess.last_range = (start, end)
        self.result(sess, st, rows, 1, summary)

    def result(
        self, sess: Session, st: Student, rows: list[Row], page: int, summary: str = ""
    ) -> None:
        """Answer with one result page of rows and remember them for paging."""
        sess.last_query = rows
        settings = self.state.settings
        size = settings.page_size
        page = min(max(page, 1), pages.page_count(len(rows), size))
        if settings.markup == "platform" and sess.last_range is None:
            paging = pages.Paging(
                "/accounttodatTrjnObject.action",
                "pageVo.pageNum",
                (("account", st.card_number), ("inputObject", "all")),
            )
            summary = summary or "总交易额为"
        elif settings.markup == "platform":
            start, end = sess.last_range or (None, None)
            paging = pages.Paging(
                "/accountconsubBrows.action",
                "pageNum",
                (("inputStartDate", f"{start:%Y%m%d}"), ("inputEndDate", f"{end:%Y%m%d}")),
            )
            summary = summary or "总计交易额为"
        else:
            paging = pages.Paging("/accountconsubBrows.action", "pageNum")
        self.html(
            pages.result_page(
                rows, st, page, size, settings.markup, paging, summary, self.variant()
            )
        )


class NotFoundHandler(SchoolHandler):
    """Any other school URL: Tomcat's 404."""

    def get(self, *args: str) -> None:
        """404."""
        self._plain(404, pages.tomcat_error(404))

    def post(self, *args: str) -> None:
        """404."""
        self._plain(404, pages.tomcat_error(404))


class HomeHandler(SchoolHandler):
    """GET / and /homeLogin.action: the login page, always setting the cookie."""

    def get(self) -> None:
        """The login page."""
        self.session(always_cookie=True)
        self.html(pages.login_page(variant=self.variant()))


class CaptchaHandler(SchoolHandler):
    """GET /getCheckpic.action: 4 random digits (never checked, but must be fetched)."""

    def get(self) -> None:
        """A captcha PNG (a session without a valid cookie gets a new one here)."""
        sess = self.session()
        png, text = render_captcha(self.state.rng)
        sess.captcha = text
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "no-cache")
        self.finish(png)


class KeypadHandler(SchoolHandler):
    """GET /getpasswdPhoto.action: a freshly shuffled password keypad."""

    def get(self) -> None:
        """A keypad JPEG; the session remembers this latest shuffle."""
        sess = self.session()
        jpeg, keys = render_keypad(self.state.rng)
        sess.keypad = keys
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "no-cache")
        self.finish(jpeg)


def _decode_password(sent: str, keys: list[str]) -> str | None:
    """Map key indexes back to the digits they show; None if not a valid index string."""
    if not sent or not sent.isascii() or not sent.isdigit():
        return None
    shown = [keys[int(c)] for c in sent]
    return "".join(shown) if all(k.isdigit() for k in shown) else None


class LoginHandler(SchoolHandler):
    """POST /loginstudent.action."""

    latency_kind = "login"

    def post(self) -> None:
        """Check session, student and keypad-mapped password."""
        state = self.state
        sess = self.session()
        stuid = self.arg("name")
        self.page_key = stuid
        if sess.captcha is None or sess.keypad is None:
            error = pages.EXPIRED_ERROR
        elif state.dataset.student(stuid) is None:
            error = pages.NO_USER
        elif _decode_password(self.arg("passwd"), sess.keypad) != state.dataset.password(stuid):
            error = pages.WRONG_PASSWORD
        else:
            st = state.dataset.student(stuid)
            assert st is not None
            state.sessions.login(sess, stuid, state.settings.kick_old_sessions)
            state.stats.logins_ok += 1
            if state.settings.login_redirect:
                self.redirect("accountcardUser.action")
                return
            self.html(pages.frame_page(st.name, state.settings.markup, self.variant()))
            return
        state.stats.logins_failed += 1
        self.html(pages.login_page(error, self.variant()))


class AccountHandler(SchoolHandler):
    """GET /accountcardUser.action: the account table."""

    def get(self) -> None:
        """Account info with the balance now."""
        found = self.logged_in()
        if found is None:
            return
        _, st = found
        balance = self.state.dataset.balance(st, self.state.now())
        account = pages.Account(st, money(balance))
        self.html(pages.account_page(account, self.state.settings.markup, self.variant()))


class TodayHandler(SchoolHandler):
    """GET/POST /accounttodayTrjn.action: the today form; its answer in the 2013 markup."""

    def get(self) -> None:
        """The account form (posting here in 2013, to accounttodatTrjnObject.action later)."""
        found = self.logged_in()
        if found is None:
            return
        sess, st = found
        sess.today_ready = True
        action = "/accounttodayTrjn.action"
        if self.state.settings.markup == "platform":
            action = "/accounttodatTrjnObject.action"
        self.html(pages.account_form(action, st.card_number, "当日流水查询", self.variant()))

    def post(self) -> None:
        """Result page 1 of today's transactions (the form must have been fetched)."""
        if self.state.settings.markup != "2013":
            self._plain(404, pages.tomcat_error(404))
            return
        found = self.logged_in()
        if found is None:
            return
        sess, st = found
        if not sess.today_ready:
            self.html(pages.error_page(pages.STEP_ERROR, self.variant()))
            return
        self.today_result(sess, st, 1)


class TodayObjectHandler(SchoolHandler):
    """POST /accounttodatTrjnObject.action (later platform): today's rows, page pageVo.pageNum."""

    def post(self) -> None:
        """A result page; no step is required (evidence: clients post here directly)."""
        if self.state.settings.markup != "platform":
            self._plain(404, pages.tomcat_error(404))
            return
        found = self.logged_in()
        if found is None:
            return
        sess, st = found
        self.today_result(sess, st, _page_number(self.arg("pageVo.pageNum")))


def _page_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1


def _parse_day(text: str) -> date | None:
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


class HistoryHandler(SchoolHandler):
    """/accounthisTrjn.action: step 1 of the history chain; the later platform's whole chain."""

    def latency_factor(self) -> float:
        """The later platform runs the history query on its last continuation."""
        key = self.get_query_argument("__continue", "")
        if key and self.state.settings.markup == "platform":
            idle = self.state.settings.session_idle_s
            sess = self.state.sessions.get(self.get_cookie(COOKIE), idle)
            if sess is not None and sess.flow.get(key) == 3:
                return self.state.settings.history_latency_factor
        return 1.0

    def get(self) -> None:
        """Start the chain, or (later platform) continue it."""
        self.chain()

    def post(self) -> None:
        """The same (clients at other schools POST the first step and GET the last)."""
        self.chain()

    def chain(self) -> None:
        found = self.logged_in()
        if found is None:
            return
        sess, st = found
        key = self.get_query_argument("__continue", "")
        if self.state.settings.markup == "platform" and key:
            self.continue_flow(sess, st, key)
            return
        if self.state.settings.markup == "platform":
            # Evidence: the first form posts to accounthisTrjn.action?__continue=<key>.
            sess.flow.clear()
            action = "/accounthisTrjn.action?__continue=" + self.new_key(sess, 1)
        else:
            action = "/accounthisTrjn1.action"
        sess.his_step = 1
        sess.his_range = None
        self.html(pages.account_form(action, st.card_number, "历史流水查询", self.variant()))

    def new_key(self, sess: Session, step: int) -> str:
        key = f"{self.state.rng.getrandbits(64):016x}"
        sess.flow[key] = step
        return key

    def continue_flow(self, sess: Session, st: Student, key: str) -> None:
        step = sess.flow.pop(key, None)
        if step == 1:
            self.html(
                pages.date_form(
                    "/accounthisTrjn.action?__continue=" + self.new_key(sess, 2),
                    *self.default_range(),
                    self.variant(),
                )
            )
        elif step == 2:
            accepted = self.accept_dates(sess)
            if accepted:
                # Evidence: the wait page's form holds "?__continue=<key>" in id and action.
                target = "?__continue=" + self.new_key(sess, 3)
                self.html(pages.wait_page(target, target, self.variant()))
            else:
                sess.flow[key] = 2  # corrected dates may be posted again
        elif step == 3 and sess.his_range is not None:
            self.history_result(sess, st, "总计交易额为")
        else:
            self.html(pages.error_page(pages.STEP_ERROR, self.variant()))


class History1Handler(SchoolHandler):
    """POST /accounthisTrjn1.action: the date form (2013 markup)."""

    def post(self) -> None:
        """Date form defaulting to yesterday-7 .. yesterday."""
        found = self.logged_in()
        if found is None:
            return
        sess, _ = found
        if sess.his_step < 1 or self.state.settings.markup != "2013":
            self.html(pages.error_page(pages.STEP_ERROR, self.variant()))
            return
        sess.his_step = 2
        self.html(pages.date_form("/accounthisTrjn2.action", *self.default_range(), self.variant()))


class History2Handler(SchoolHandler):
    """POST /accounthisTrjn2.action: validate the dates, answer "please wait" (2013 markup)."""

    def post(self) -> None:
        """The self-submitting wait page, or the bad-date error."""
        found = self.logged_in()
        if found is None:
            return
        sess, _ = found
        if sess.his_step < 2 or self.state.settings.markup != "2013":
            self.html(pages.error_page(pages.STEP_ERROR, self.variant()))
            return
        if self.accept_dates(sess):
            self.html(pages.wait_page("/accounthisTrjn3.action", variant=self.variant()))


class History3Handler(SchoolHandler):
    """POST /accounthisTrjn3.action: result page 1 of the accepted date range (2013 markup)."""

    latency_kind = "history"

    def post(self) -> None:
        """Result page 1; the chain is used up."""
        found = self.logged_in()
        if found is None:
            return
        sess, st = found
        if sess.his_step < 3 or sess.his_range is None or self.state.settings.markup != "2013":
            self.html(pages.error_page(pages.STEP_ERROR, self.variant()))
            return
        self.history_result(sess, st, "")


class PagingHandler(SchoolHandler):
    """POST /accountconsubBrows.action: page N of the session's last query."""

    def post(self) -> None:
        """Result page pageNum (clamped to the existing pages)."""
        found = self.logged_in()
        if found is None:
            return
        sess, st = found
        if sess.last_query is None:
            self.html(pages.error_page(pages.STEP_ERROR, self.variant()))
            return
        self.result(sess, st, sess.last_query, _page_number(self.arg("pageNum")))


# ---- /__sim/ side endpoints ------------------------------------------------


class SimHandler(BaseSimHandler):
    """Base of the card center's JSON side endpoints (outside the overload layer)."""

    state: AppState

    def student(self, stuid: str) -> Student | None:
        """The student, or None after answering 404."""
        st = self.state.dataset.student(stuid)
        if st is None:
            self.send({"error": f"no such student {stuid}"}, 404)
        return st


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "time": f"{row.time:%Y/%m/%d %H:%M:%S}",
        "way": row.way,
        "position": row.position,
        "amount": money(row.amount),
        "balance_after": money(row.balance_after),
        "count": row.count,
    }


class StudentHandler(SimHandler):
    """GET /__sim/students/<stuid>: the truth about one student."""

    def get(self, stuid: str) -> None:
        """Identity, balance now, today's and the last 14 days' rows (newest first)."""
        st = self.student(stuid)
        if st is None:
            return
        state = self.state
        now = state.now()
        offset = state.settings.clock_offset_minutes
        shown_now = now + timedelta(minutes=offset)
        today = shown_now.date()
        first = today - timedelta(days=TRUTH_HISTORY_DAYS)
        yesterday = today - timedelta(days=1)
        self.send(
            {
                "stuid": st.stuid,
                "name": st.name,
                "card_number": st.card_number,
                "identity": st.identity,
                "department": st.department,
                "password_is_default": state.dataset.password_is_default(stuid),
                "balance": money(state.dataset.balance(st, now)),
                "displayed_now": f"{shown_now:%Y/%m/%d %H:%M:%S}",
                "today": [_row_json(r) for r in state.dataset.rows(st, now, offset, today, today)],
                "history_from": f"{first:%Y%m%d}",
                "history_to": f"{yesterday:%Y%m%d}",
                "history_days": [
                    _row_json(r) for r in state.dataset.rows(st, now, offset, first, yesterday)
                ],
            }
        )


class PasswordHandler(SimHandler):
    """POST /__sim/students/<stuid>/password."""

    def post(self, stuid: str) -> None:
        """Set the password ({"password": "123456"}; digits only, as the keypad has)."""
        data = self.body()
        if data is None:
            return
        st = self.student(stuid)
        if st is None:
            return
        password = data.get("password")
        if not isinstance(password, str) or not re.fullmatch(r"\d{1,20}", password):
            self.send({"error": "password must be 1..20 digits"}, 400)
            return
        self.state.dataset.set_password(stuid, password)
        self.send(
            {"ok": True, "password_is_default": self.state.dataset.password_is_default(stuid)}
        )


class SpendHandler(SimHandler):
    """POST /__sim/students/<stuid>/spend."""

    def post(self, stuid: str) -> None:
        """Record a purchase now ({"amount": "5.50", "position": "第一饭堂"})."""
        data = self.body()
        if data is None:
            return
        st = self.student(stuid)
        if st is None:
            return
        position = data.get("position", "第一饭堂")
        try:
            amount = Decimal(str(data.get("amount")))
        except InvalidOperation:
            amount = Decimal(0)
        exponent = amount.as_tuple().exponent
        if (
            not amount.is_finite()
            or amount <= 0
            or not isinstance(exponent, int)
            or exponent < -2
            or amount > 100000
        ):
            self.send({"error": "amount must be a positive number with at most 2 decimals"}, 400)
            return
        if not isinstance(position, str) or not 0 < len(position) <= 30 or not _gbk(position):
            self.send({"error": "position must be 1..30 GBK characters"}, 400)
            return
        state = self.state
        now = state.now()
        try:
            balance = state.dataset.spend(st, amount, position, now)
        except ValueError as exc:
            self.send({"error": str(exc)}, 409)
            return
        shown = now + timedelta(minutes=state.settings.clock_offset_minutes)
        self.send({"ok": True, "balance": money(balance), "time": f"{shown:%Y/%m/%d %H:%M:%S}"})


def _gbk(text: str) -> bool:
    try:
        text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


class SimNotFoundHandler(SimHandler):
    """Unknown /__sim/ URL."""

    def get(self, *args: str) -> None:
        """404 JSON."""
        self.send({"error": "unknown simulator endpoint"}, 404)

    def post(self, *args: str) -> None:
        """404 JSON."""
        self.send({"error": "unknown simulator endpoint"}, 404)


def make_app(state: AppState, mounts: Sequence[Mount] = ()) -> tornado.web.Application:
    """The Tornado application serving the card center, the other systems (each under
    its prefix, with its own overload layer) and the side endpoints."""
    s = {"state": state}
    stu = r"/__sim/students/([^/]+)"
    return tornado.web.Application(
        [
            *(rule for mount in mounts for rule in mount.rules()),
            # The card center's side endpoints, also under /__sim/card/.
            *side_routes(r"/__sim", state),
            *side_routes(r"/__sim/card", state),
            (stu, StudentHandler, s),
            (stu + "/password", PasswordHandler, s),
            (stu + "/spend", SpendHandler, s),
            (r"/__sim/.*", SimNotFoundHandler, s),
            (r"/", HomeHandler, s),
            (r"/homeLogin\.action", HomeHandler, s),
            (r"/getCheckpic\.action", CaptchaHandler, s),
            (r"/getpasswdPhoto\.action", KeypadHandler, s),
            (r"/loginstudent\.action", LoginHandler, s),
            (r"/accountcardUser\.action", AccountHandler, s),
            (r"/accounttodayTrjn\.action", TodayHandler, s),
            (r"/accounttodatTrjnObject\.action", TodayObjectHandler, s),
            (r"/accounthisTrjn\.action", HistoryHandler, s),
            (r"/accounthisTrjn1\.action", History1Handler, s),
            (r"/accounthisTrjn2\.action", History2Handler, s),
            (r"/accounthisTrjn3\.action", History3Handler, s),
            (r"/accountconsubBrows\.action", PagingHandler, s),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=s,
        log_function=_no_log,
    )
