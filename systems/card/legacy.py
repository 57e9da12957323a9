"""The 2013 jnu.fm card endpoints: same paths, methods, parameters and JSON shapes.

`/card/rest` -> {"data": "<balance>"}; `/card/today` and `/card/month` ->
{"data": [{"time", "way", "position", "price", "rest"}]}; `/card/personalinfo`
-> {"data": [<the account page's value cells>]}. Credentials are `stuid` and
`password`, in the query string as in 2013, or in a POST body. `/card/rest`
and `/card/month` take GET and POST, the other two GET only, as in 2013.
"""

from __future__ import annotations

from api.answers.card import (
    LegacyBalance,
    LegacyPersonalInfo,
    LegacyTransaction,
    LegacyTransactions,
)
from handlers.legacy import LegacyHandler, encode
from services.campus import CHINA
from services.credentials import Credentials
from systems.card.models import Transaction

# The 2013 "month" was the days today-7 .. today (its query's dates).
MONTH_DAYS = 7


def legacy_rows(rows: list[Transaction]) -> LegacyTransactions:
    return LegacyTransactions(
        data=[
            LegacyTransaction(
                time=row.time.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                way=row.way,
                position=row.position,
                price=f"{row.amount:.2f}",
                rest=f"{row.balance_after:.2f}",
            )
            for row in rows
        ]
    )


def value_cells(cells: tuple[str, ...]) -> list[str]:
    """The account page's value cells, as 2013 listed them: the cells without a full-width colon."""
    return [cell for cell in cells if "：" not in cell]


class LegacyCardHandler(LegacyHandler):
    def credentials(self) -> Credentials:
        # The query string (2013), or a form-encoded POST body.
        creds = Credentials.parse(
            self.get_argument("stuid", None), self.get_argument("password", None)
        )
        self.note_student(creds.student_id)
        return creds


class BalanceHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        creds, caller, fresh = self.credentials(), self.caller(), self.wants_fresh()
        # A warm hit's short way: the body written last time, while it still holds.
        ready = card.ready_balance(self.route, creds, caller, fresh)
        if ready is not None:
            self.write_ready(ready)
            return
        answer = await card.balance(creds, caller, fresh)
        body = encode(LegacyBalance(data=f"{answer.value.balance:.2f}"), self.style).encode()
        card.keep_balance(self.route, creds, answer, body)
        self.write_kept(answer, body)

    post = get


class TodayHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        creds = self.credentials()
        answer = await card.today_transactions(creds, self.caller(), self.wants_fresh())
        self.write_answer(answer, legacy_rows(answer.value))


class MonthHandler(LegacyCardHandler):
    async def get(self) -> None:
        creds = self.credentials()
        card = self.deps.card
        answer = await card.recent_days(creds, MONTH_DAYS, self.caller(), self.wants_fresh())
        self.write_answer(answer, legacy_rows(answer.value))

    post = get


class PersonalInfoHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        answer = await card.profile(self.credentials(), self.caller(), self.wants_fresh())
        self.write_answer(answer, LegacyPersonalInfo(data=value_cells(answer.value.cells)))
