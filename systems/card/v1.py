"""/v1/card/: balance, profile and transactions. Money is a decimal string with `currency`."""

from __future__ import annotations

from decimal import Decimal

from api.answers.card import Amount, Balance, Profile, Transaction, Transactions
from handlers.v1 import V1Handler, parse_date
from systems.card.models import Transaction as CardTransaction

CURRENCY = "CNY"


def money(amount: Decimal) -> str:
    return f"{amount:.2f}"


class V1BalanceHandler(V1Handler):
    async def get(self) -> None:
        card = self.deps.card
        creds = await self.credentials()
        caller, fresh = self.caller(), self.wants_fresh()
        # A warm hit's short way: the body written last time, while it still holds.
        ready = card.ready_balance(self.route, creds, caller, fresh)
        if ready is not None:
            self.write_ready(ready)
            return
        answer = await card.balance(creds, caller, fresh)
        amount = Amount(amount=money(answer.value.balance), currency=CURRENCY)
        body = Balance(**self.about(creds, answer), balance=amount).json_text().encode()
        card.keep_balance(self.route, creds, answer, body)
        self.write_kept(answer, body)

    post = get


class V1ProfileHandler(V1Handler):
    async def get(self) -> None:
        creds = await self.credentials()
        answer = await self.deps.card.profile(creds, self.caller(), self.wants_fresh())
        info = answer.value
        body = Profile(
            **self.about(creds, answer),
            name=info.name,
            card_number=info.card_number,
            identity=info.identity,
            department=info.department,
            status=info.status,
        )
        self.write_answer(answer, body)

    post = get


def v1_rows(rows: list[CardTransaction]) -> list[Transaction]:
    return [
        Transaction(
            time=row.time,
            kind=row.way,
            place=row.position,
            amount=money(row.amount),
            balance_after=money(row.balance_after),
        )
        for row in rows
    ]


class V1TransactionsHandler(V1Handler):
    async def get(self) -> None:
        creds = await self.credentials()
        today = self.deps.card.today()
        end = parse_date("end", self.param("end"), today)
        # Without a start: the end's day alone (today's, without either).
        start = parse_date("start", self.param("start"), min(today, end))
        answer = await self.deps.card.transactions(
            creds, start, end, self.caller(), self.wants_fresh()
        )
        body = Transactions(
            **self.about(creds, answer),
            start=start,
            end=end,
            currency=CURRENCY,
            count=len(answer.value),
            transactions=v1_rows(answer.value),
        )
        self.write_answer(answer, body)

    post = get
