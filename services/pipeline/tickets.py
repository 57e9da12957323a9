"""A request's passage through the pipeline: its ticket.

For a system with passwords the credential gate issues it (services/gate.py,
`GateTicket`); a system without (the library) gets a `NullTicket`, so the
pipeline treats every request alike: the same key, flight, cache rules and
outcomes, with nothing to count, judge or release.
"""

from __future__ import annotations

from typing import Protocol

from services.callers import Caller


class Ticket(Protocol):
    """What the pipeline asks of a request's ticket."""

    @property
    def subject(self) -> str:
        """The student the answers are about ("" for answers every student shares)."""
        ...

    @property
    def flight(self) -> str:
        """What sets this request's fetches apart from identical questions' (its password's
        verifier): only requests of the same flight share one fetch."""
        ...

    @property
    def matches(self) -> bool:
        """The password matches the verifier: cached answers and stored sessions may be used."""
        ...

    @property
    def caller(self) -> Caller: ...

    def credentials(self) -> tuple[str, str]: ...

    async def before_login(self) -> None: ...

    async def proven_elsewhere(self) -> bool: ...

    async def accepted(self) -> None: ...

    async def rejected(self) -> None: ...

    def hold(self) -> None: ...

    async def release(self) -> None: ...


class NullTicket:
    """The ticket of a request to a system without passwords: about no student, always
    matching, with nothing to judge, count or release."""

    __slots__ = ("caller",)

    subject = ""
    flight = ""
    matches = True

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    def credentials(self) -> tuple[str, str]:
        raise TypeError("a system without passwords has no credentials to log in with")

    async def before_login(self) -> None:
        return None

    async def proven_elsewhere(self) -> bool:
        return True

    async def accepted(self) -> None:
        return None

    async def rejected(self) -> None:
        return None

    def hold(self) -> None:
        return None

    async def release(self) -> None:
        return None
