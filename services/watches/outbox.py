"""Delivering the outbox: every worker takes due messages under a lease, hands each to
its channel's Deliverer, and marks the row with what came of it.

    claim (lease_s)  ->  open the notice and the watch's target  ->  the student's cap
        ->  Deliverer.deliver  ->  delivered | retry at now + backoff * 2^attempts
                                             | given up (shown on the watch)

At least once: a worker killed mid-delivery marks nothing; its lease expires and
another worker delivers the message again, with the same event key, which every
channel carries (webhook: X-Jnufm-Event; e-mail: Message-ID; WeChat: the short key
in the text), so receivers tell a second delivery from a new event. A delivery is cut
off before its lease runs out, so a slow receiver never has two workers sending to it.

The student's hourly cap (watches.messages_per_student_per_hour) counts the messages
delivered to the student in the last hour over all channels: a message over it waits
(held back, no attempt counted) until the oldest of them leaves the hour. It is not
dropped. Messages two workers send to one student at the same moment may pass it by
the few they send at once.

Nothing here raises to the loop's caller: a storage error ends a step, and the next
step (or another worker) goes on; a Deliverer that raises counts as "retry later".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import outbox_delivery as q
from observability import metrics
from services.leases import new_holder_id
from services.vault import SessionVault
from services.watches.notices import Notice, open_field, open_notice
from settings import WatchesSettings

log = logging.getLogger("jnufm.watches")

# Messages one step takes at most (delivered concurrently).
BATCH: Final = 20
# How long the loop waits when the outbox had nothing due (jittered), and how often it
# reads the outbox's counts for the metrics.
IDLE_S: Final = 1.0
IDLE_MAX_S: Final = 5.0
COUNTS_S: Final = 15.0
# The longest wait between two attempts, whatever the backoff doubled to.
MAX_BACKOFF_S: Final = 86400.0
# A delivery is cut off this long before its lease ends (the mark must land in time).
LEASE_MARGIN_S: Final = 2.0
HOUR: Final = timedelta(hours=1)
MINUTE: Final = timedelta(minutes=1)

Status = Literal["delivered", "retry", "give_up"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of one delivery attempt: delivered, retry later, or give up; and why
    (our words and the receiver's status: never a secret, a target or the message)."""

    status: Status
    why: str = ""

    @classmethod
    def delivered(cls) -> Outcome:
        return cls("delivered")

    @classmethod
    def retry(cls, why: str) -> Outcome:
        return cls("retry", why)

    @classmethod
    def give_up(cls, why: str) -> Outcome:
        return cls("give_up", why)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a watch's messages go, opened: the address (a URL, an e-mail address, a
    WeChat "<account>\\n<openid>") and the webhook's signing secret."""

    address: str
    secret: str | None = None


class Deliverer(Protocol):
    """A channel: sends one notice to one target and says what came of it. Never raises
    for what the receiver or the network did (an exception counts as "retry")."""

    @property
    def channel(self) -> str: ...

    async def deliver(self, target: Target, notice: Notice) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write on a row after an attempt: delivered, retry at `at`, or given up."""

    status: Status
    at: datetime | None = None
    why: str = ""


def decide(
    outcome: Outcome, attempts_before: int, settings: WatchesSettings, now: datetime
) -> Decision:
    """The row's next state after an attempt (the `attempts_before` + 1-th): a failure
    is retried after delivery_backoff_s doubled per earlier attempt, until
    delivery_attempts were made; then, or on a permanent failure, given up."""
    if outcome.status == "delivered":
        return Decision("delivered")
    made = attempts_before + 1
    if outcome.status == "give_up":
        return Decision("give_up", why=outcome.why)
    if made >= settings.delivery_attempts:
        return Decision("give_up", why=f"{made} attempts: {outcome.why}")
    delay = min(MAX_BACKOFF_S, settings.delivery_backoff_s * 2 ** min(attempts_before, 40))
    return Decision("retry", at=now + timedelta(seconds=delay), why=outcome.why)


def held_until(
    sent: list[datetime], going: int, cap: int, now: datetime, window: timedelta = HOUR
) -> datetime | None:
    """None if one more message fits a cap of `cap` a `window` (`sent`: delivered within
    the window, oldest first; `going`: sent in this step already), else when it will."""
    used = len(sent) + going
    if used < cap:
        return None
    index = used - cap
    return sent[index] + window if index < len(sent) else now + window


@dataclass(slots=True)
class _Send:
    message: q.ClaimedMessage
    notice: Notice
    target: Target
    deliverer: Deliverer


class OutboxDelivery:
    """One worker's delivery of the outbox (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: SessionVault,
        settings: WatchesSettings,
        deliverers: Iterable[Deliverer],
        now: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._vault = vault
        self._settings = settings
        self._deliverers = {d.channel: d for d in deliverers}
        self._now = now
        self._clock = clock
        self._holder = new_holder_id()
        self._task: asyncio.Task[None] | None = None

    async def deliver_due(self, limit: int = BATCH) -> int:
        """One step: claim up to `limit` due messages and deliver them. The number of
        messages taken (delivered, retried, given up on or held back).

        Raises SQLAlchemyError when the database refuses the claim.
        """
        now = self._now()
        lease_until = now + timedelta(seconds=self._settings.delivery_lease_s)
        async with self._sessions.begin() as db:
            claimed = await q.claim_due(db, self._holder, now, lease_until, limit)
            students = sorted({m.student_id for m in claimed if m.student_id is not None})
            sent = await q.sent_since(db, students, now - HOUR)
            channels = sorted({m.channel for m in claimed})
            by_channel = await q.channel_sent_since(db, channels, now - MINUTE)
        sends: list[_Send] = []
        going: dict[str, int] = {}
        going_on: dict[str, int] = {}
        for message in claimed:
            prepared = self._prepare(message)
            if isinstance(prepared, Outcome):
                await self._finish(message, Decision("give_up", why=prepared.why), attempted=False)
                continue
            student = message.student_id or ""
            later = held_until(
                sent.get(student, []),
                going.get(student, 0),
                self._settings.messages_per_student_per_hour,
                now,
            )
            channel = message.channel
            later = later or held_until(
                by_channel.get(channel, []),
                going_on.get(channel, 0),
                self._settings.messages_per_channel_per_min,
                now,
                MINUTE,
            )
            if later is not None:
                await self._hold_back(message, later)
                continue
            going[student] = going.get(student, 0) + 1
            going_on[channel] = going_on.get(channel, 0) + 1
            sends.append(prepared)
        deadline = (lease_until - now).total_seconds() - LEASE_MARGIN_S
        await asyncio.gather(*(self._attempt(send, max(0.1, deadline)) for send in sends))
        return len(claimed)

    async def read_counts(self) -> q.OutboxCounts:
        """The outbox's counts, also set on the metrics.

        Raises SQLAlchemyError.
        """
        async with self._sessions() as db:
            found = await q.counts(db)
        metrics.set_outbox_counts(found.depth, found.failed, found.watches)
        return found

    # One message ---------------------------------------------------------------------

    def _prepare(self, message: q.ClaimedMessage) -> _Send | Outcome:
        """What to send, or why the message cannot be sent at all."""
        if message.student_id is None or message.target is None:
            return Outcome.give_up("the watch is gone")
        if message.watch_ended:
            return Outcome.give_up("the watch ended")
        deliverer = self._deliverers.get(message.channel)
        if deliverer is None:
            return Outcome.give_up(f"no {message.channel} channel on this server")
        notice = open_notice(self._vault, message.watch_id, message.payload)
        address = open_field(self._vault, message.student_id, "target", message.target)
        secret = (
            open_field(self._vault, message.student_id, "secret", message.secret)
            if message.secret is not None
            else None
        )
        if notice is None or address is None or (message.secret is not None and secret is None):
            return Outcome.give_up("sealed under another key")
        return _Send(message, notice, Target(address, secret), deliverer)

    async def _attempt(self, send: _Send, limit_s: float) -> None:
        channel = send.message.channel
        started = self._clock()
        try:
            async with asyncio.timeout(limit_s):
                outcome = await send.deliverer.deliver(send.target, send.notice)
        except TimeoutError:
            outcome = Outcome.retry(f"no outcome within {limit_s:.0f} s")
        except Exception as exc:  # a channel's bug must not lose the message
            log.exception("watches: the %s channel failed", channel)
            outcome = Outcome.retry(f"the channel failed ({type(exc).__name__})")
        metrics.observe_outbox_delivery(channel, self._clock() - started)
        decision = decide(outcome, send.message.attempts, self._settings, self._now())
        await self._finish(send.message, decision)

    async def _finish(
        self, message: q.ClaimedMessage, decision: Decision, attempted: bool = True
    ) -> None:
        now = self._now()
        try:
            async with self._sessions.begin() as db:
                if decision.status == "delivered":
                    marked = await q.mark_delivered(db, message.id, self._holder, now)
                elif decision.status == "retry" and decision.at is not None:
                    marked = await q.mark_retry(
                        db, message.id, self._holder, decision.at, decision.why
                    )
                else:
                    marked = await q.give_up(
                        db, message.id, message.watch_id, self._holder, now, decision.why, attempted
                    )
        except SQLAlchemyError as exc:
            # The lease expires and the message is delivered again (at least once).
            log.warning(
                "watches: outbox message %s not marked %s (%s)",
                message.id,
                decision.status,
                type(exc).__name__,
            )
            return
        if not marked:
            log.warning("watches: outbox message %s: lease lost before the mark", message.id)
            return
        outcome = {"delivered": "delivered", "retry": "retried", "give_up": "given_up"}
        metrics.record_outbox_message(message.channel, outcome[decision.status])
        if decision.status == "give_up":
            log.warning(
                "watches: outbox message %s (watch %s, %s) given up: %s",
                message.id,
                message.watch_id,
                message.channel,
                decision.why,
            )

    async def _hold_back(self, message: q.ClaimedMessage, until: datetime) -> None:
        try:
            async with self._sessions.begin() as db:
                marked = await q.hold_back(db, message.id, self._holder, until)
        except SQLAlchemyError as exc:
            log.warning(
                "watches: outbox message %s not held back (%s)", message.id, type(exc).__name__
            )
            return
        if marked:
            metrics.record_outbox_message(message.channel, "held_back")

    # The loop ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (nothing if `watches.enabled` is false)."""
        if self._settings.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; a delivery cut off here is delivered again after its lease."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        counted_at = -COUNTS_S
        # An empty outbox is looked at less and less often, up to IDLE_MAX_S: a worker
        # with nothing to send costs the database next to nothing.
        idle = IDLE_S
        while True:
            taken = 0
            try:
                if self._clock() - counted_at >= COUNTS_S:
                    counted_at = self._clock()
                    await self.read_counts()
                taken = await self.deliver_due(BATCH)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("watches: the outbox cannot be read (%s)", type(exc).__name__)
            except Exception:  # never let the loop die: the next step may do better
                log.exception("watches: an outbox step failed")
            idle = IDLE_S if taken else min(IDLE_MAX_S, idle * 1.5)
            if taken < BATCH:
                await asyncio.sleep(idle * random.uniform(0.5, 1.5))
