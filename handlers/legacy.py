"""The 2013 jnu.fm card endpoints: same paths, methods, parameters and JSON shapes.

`/card/rest` -> {"data": "<balance>"}; `/card/today` and `/card/month` ->
{"data": [{"time", "way", "position", "price", "rest"}]}; `/card/personalinfo`
-> {"data": [<the account page's value cells>]}. Credentials are `stuid` and
`password`, in the query string as in 2013, or in a POST body. `/card/rest`
and `/card/month` take GET and POST, the other two GET only, as in 2013.
Every error body is {"data": null, "error": {...}}, so a 2013 client reading
["data"] shows nothing instead of crashing. README lists every difference
from 2013.
"""

from __future__ import annotations

import json
from typing import Any

from handlers.base import AppDeps, JsonHandler, describe_error
from school.card.models import Transaction
from services.card import CHINA
from services.credentials import Credentials

# The 2013 "month" was the days today-7 .. today (its query's dates).
MONTH_DAYS = 7


def legacy_rows(rows: list[Transaction]) -> list[dict[str, str]]:
    return [
        {
            "time": row.time.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "way": row.way,
            "position": row.position,
            "price": f"{row.amount:.2f}",
            "rest": f"{row.balance_after:.2f}",
        }
        for row in rows
    ]


def value_cells(cells: tuple[str, ...]) -> list[str]:
    """The account page's value cells, as 2013 listed them: the cells without a full-width colon."""
    return [cell for cell in cells if "：" not in cell]


def body_style(deps: AppDeps) -> str:
    """`api.legacy_body` of this worker's settings ("compact" or "2013")."""
    return "2013" if deps.legacy_body == "2013" else "compact"


def encode(body: Any, style: str) -> str:
    """A legacy body: compact, or the 2013 server's bytes.

    2013 answered with Flask 0.10's jsonify on Python 2.7: indent 2, ASCII
    escapes, sorted keys, and Python 2's ", " item separator (a space at the
    end of every line but a block's last). The log's balance answers were 20
    bytes: `{\\n  "data": "6.50"\\n}`, a balance of 4 characters.
    """
    if style == "2013":
        return json.dumps(
            body, indent=2, ensure_ascii=True, sort_keys=True, separators=(", ", ": ")
        )
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class LegacyCardHandler(JsonHandler):
    def initialize(self, deps: AppDeps) -> None:
        super().initialize(deps)
        self.style = body_style(deps)

    def credentials(self) -> Credentials:
        # The query string (2013), or a form-encoded POST body.
        return Credentials.parse(
            self.get_argument("stuid", None), self.get_argument("password", None)
        )

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode(body, self.style))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        status, code, message, headers = describe_error(exc, status_code, self.deps.retry_after_s)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in headers.items():
            self.set_header(name, value)
        # "data" beside "error": a 2013 client reads body["data"] and finds nothing.
        body = {"data": None, "error": {"code": code, "message": message}}
        self.finish(encode(body, self.style))


class BalanceHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        answer = await card.balance(self.credentials(), self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": f"{answer.value.balance:.2f}"})

    post = get


class TodayHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        creds = self.credentials()
        answer = await card.today_transactions(creds, self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": legacy_rows(answer.value)})


class MonthHandler(LegacyCardHandler):
    async def get(self) -> None:
        creds = self.credentials()
        card = self.deps.card
        answer = await card.recent_days(creds, MONTH_DAYS, self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": legacy_rows(answer.value)})

    post = get


class PersonalInfoHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        answer = await card.profile(self.credentials(), self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": value_cells(answer.value.cells)})
