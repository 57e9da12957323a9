"""The 2013 jnu.fm card endpoints, same paths, parameters and JSON shapes.

`/card/rest` -> {"data": "<balance>"}; `/card/today` and `/card/month` ->
{"data": [{"time", "way", "position", "price", "rest"}]}; `/card/personalinfo`
-> {"data": [<text cells of the account page>]}. Credentials come as the
query parameters `stuid` and `password`, as they did in 2013.
"""

from __future__ import annotations

from datetime import timedelta

from handlers.base import JsonHandler
from school.models import Transaction
from services.card import CHINA
from services.credentials import Credentials

MONTH_DAYS = 7  # the 2013 "month" endpoint really returned the last 7 days


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


class LegacyCardHandler(JsonHandler):
    def credentials(self) -> Credentials:
        return Credentials.parse(
            self.get_query_argument("stuid", None), self.get_query_argument("password", None)
        )


class BalanceHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        answer = await card.balance(self.credentials(), self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": f"{answer.value.balance:.2f}"})


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
        today = card.today()
        start, end = today - timedelta(days=MONTH_DAYS), today - timedelta(days=1)
        answer = await card.transactions(creds, start, end, self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": legacy_rows(answer.value)})


class PersonalInfoHandler(LegacyCardHandler):
    async def get(self) -> None:
        card = self.deps.card
        answer = await card.profile(self.credentials(), self.wants_fresh(), self.client_ip())
        self.write_answer(answer, {"data": list(answer.value.cells)})
