"""The card center's answers: the 2013 shapes and /v1/card/."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.answers.common import AnswerModel, Day, Moment, Money, StudentAnswer

Currency = Literal["CNY"]

# --- 2013 ------------------------------------------------------------------------------------


class LegacyTransaction(AnswerModel):
    time: str = Field(
        description="the card center's time, corrected by `school.card.clock_offset_minutes`",
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
    )
    way: str = Field(description="the kind of transaction, as the card center names it")
    position: str = Field(description="where")
    price: Money
    rest: Money


class LegacyBalance(AnswerModel):
    data: Money


class LegacyTransactions(AnswerModel):
    data: list[LegacyTransaction]


class LegacyPersonalInfo(AnswerModel):
    data: list[str] = Field(description="the account page's cells")


# --- /v1/card/ -------------------------------------------------------------------------------


class Amount(AnswerModel):
    amount: Money
    currency: Currency


class Balance(StudentAnswer):
    balance: Amount


class Transaction(AnswerModel):
    time: Moment
    kind: str = Field(description="the kind of transaction")
    place: str
    amount: Money
    balance_after: Money


class Transactions(StudentAnswer):
    start: Day
    end: Day
    currency: Currency
    count: int = Field(ge=0)
    transactions: list[Transaction]


class Profile(StudentAnswer):
    name: str
    card_number: str
    identity: str
    department: str
    status: str


MODELS = (
    LegacyBalance,
    LegacyTransactions,
    LegacyPersonalInfo,
    Balance,
    Transactions,
    Profile,
)
