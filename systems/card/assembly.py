"""How the card center is built for one worker, and its routes."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.base import AppDeps
from services.pipeline import CookieConnector
from systems.card import SYSTEM, keypad, legacy, v1
from systems.card.client import CardCenterClient
from systems.card.config import CardCenterConfig
from systems.card.models import CardSession
from systems.card.service import CardService
from systems.parts import Built, Rule, WorkerParts


def build(parts: WorkerParts) -> Built:
    """Its client (its section as is), its pipeline (with the credential gate), its service."""
    client = CardCenterClient(parts.section("card", CardCenterConfig), parts.http["card"])
    pipeline = parts.pipeline(
        parts.spec(SYSTEM, SYSTEM.upstreams[0]),
        CookieConnector(client.login, CardSession, lambda s: s.cookie),
    )
    return Built(CardService(client, pipeline, parts.settings), (pipeline,))


def routes(deps: AppDeps) -> Mapping[str, list[Rule]]:
    d = {"deps": deps}
    return {
        "legacy": [
            (r"/card/rest", legacy.BalanceHandler, d),
            (r"/card/today", legacy.TodayHandler, d),
            (r"/card/month", legacy.MonthHandler, d),
            (r"/card/personalinfo", legacy.PersonalInfoHandler, d),
        ],
        "v1": [
            (r"/v1/card/balance", v1.V1BalanceHandler, d),
            (r"/v1/card/transactions", v1.V1TransactionsHandler, d),
            (r"/v1/card/profile", v1.V1ProfileHandler, d),
        ],
    }


def preload() -> None:
    """Before the fork: the keypad faces every worker reads logins with."""
    keypad.prepare()
