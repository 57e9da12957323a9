"""Students' session tokens: made with a password the school accepts, then used instead of it.

`open` proves the password first with the cheapest question of its system (the
card center's account page, the academic office's current timetable; answered
from the cache when the password matches the one the school last accepted, and
through the credential gate like any query), then makes a token that holds the
password sealed (services/tokens.py). Listing and revoking take the password
or one of the student's tokens of the same system: a card password never sees
or ends the academic office's tokens, which another password guards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from services import codes
from services.callers import Caller
from services.credentials import Credentials
from services.errors import BadInput
from services.pipeline import Pipeline
from services.tokens import TokenStore, TokenView
from systems.academic.service import AcademicService
from systems.card.service import CardService

SYSTEMS: Final = ("card", "academic")
MAX_LABEL: Final = 64


class SessionService:
    """Opens, lists and revokes students' session tokens, for one worker."""

    def __init__(
        self, tokens: TokenStore, card: CardService, academic: AcademicService | None
    ) -> None:
        self.tokens = tokens
        self._card = card
        self._academic = academic

    def _system(
        self, system: str
    ) -> tuple[Pipeline[Any], Callable[[Credentials, Caller], Awaitable[object]]]:
        if system == "card":
            card = self._card
            return card.pipeline, lambda creds, caller: card.balance(creds, caller)
        academic = self._academic
        if system == "academic" and academic is not None:

            async def timetable(creds: Credentials, caller: Caller) -> object:
                return await academic.timetable(creds, academic.term(None, None), caller)

            return academic.pipeline, timetable
        raise BadInput(codes.INVALID_SYSTEM, "system is card or academic")

    async def prove(self, system: str, creds: Credentials, caller: Caller) -> None:
        """Have the password judged (a token's needs nothing more). Raises what a query raises."""
        _, ask = self._system(system)
        if not creds.proven:
            await ask(creds, caller)

    async def open(
        self,
        system: str,
        creds: Credentials,
        caller: Caller,
        label: str = "",
        client: str | None = None,
    ) -> tuple[str, TokenView]:
        """A new session token for the student at `system`: the token (shown once) and
        what it is. `client` names what it was made through (default: the caller's
        registered client, if any)."""
        if len(label) > MAX_LABEL:
            raise BadInput(codes.INVALID_LABEL, f"a label is at most {MAX_LABEL} characters")
        pipeline, ask = self._system(system)
        await ask(creds, caller)  # the password must work at the school (or match)
        if client is None:
            client = caller.client.name if caller.client is not None else ""
        return await self.tokens.create_session(
            creds, system, pipeline.attempt_of(creds), client, label
        )

    async def listed(self, system: str, creds: Credentials, caller: Caller) -> list[TokenView]:
        await self.prove(system, creds, caller)
        return await self.tokens.listed(creds.student_id, system)

    async def revoke(
        self, system: str, creds: Credentials, caller: Caller, ids: list[int] | None
    ) -> list[int]:
        await self.prove(system, creds, caller)
        return await self.tokens.revoke(creds.student_id, system, ids)
