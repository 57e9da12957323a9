"""The API description of the card center's routes (its part of /openapi.json), by group as
its assembly routes them (systems/card/assembly.py)."""

from __future__ import annotations

from api import errors as e
from api.contract import Route
from api.families import DATE_PARAMS, card, legacy_card

ROUTES: dict[str, tuple[Route, ...]] = {
    "legacy": (
        Route(
            r"/card/rest",
            legacy_card(
                ("get", "post"),
                "Card balance (2013)",
                "校园卡余额（2013 接口）",
                "LegacyBalance",
                '`{"data": "123.45"}`',
            ),
        ),
        Route(
            r"/card/today",
            legacy_card(
                ("get",),
                "Today's card transactions (2013)",
                "今日消费记录（2013 接口）",
                "LegacyTransactions",
                "Times are China time, corrected for the card center's slow clock.",
            ),
        ),
        Route(
            r"/card/month",
            legacy_card(
                ("get", "post"),
                "Card transactions of today and the 7 days before (2013)",
                "今天及之前 7 天的消费记录（2013 接口）",
                "LegacyTransactions",
                '2013\'s "month" asked today-7 .. today.',
            ),
        ),
        Route(
            r"/card/personalinfo",
            legacy_card(
                ("get",),
                "The card account page's value cells (2013)",
                "校园卡账户信息（2013 接口）",
                "LegacyPersonalInfo",
                "As 2013 listed them; /v1/card/profile has named fields.",
            ),
        ),
    ),
    "v1": (
        Route(r"/v1/card/balance", card("Card balance", "校园卡余额", "Balance")),
        Route(
            r"/v1/card/transactions",
            card(
                "Card transactions in a date range",
                "一段日期内的消费记录",
                "Transactions",
                params=DATE_PARAMS,
                failures=(*e.DATES, e.QUERY_REJECTED),
                description="Both dates default to today; at most `api.history_max_days` days.",
            ),
        ),
        Route(r"/v1/card/profile", card("Card holder's profile", "持卡人信息", "Profile")),
    ),
}
