"""Connections shared fairly: who may open one, and who gives way when a worker runs short.

A worker holds at most `http.max_connections` connections (runtime/worker.py). Within
that, nobody may take what a fast client needs:

    ConnectionTable  per-host counts, per subject and worker, of open connections and of
                     connections in the middle of sending a request body: memory the
                     master maps before the fork, shared by every worker
    Subject          what a connection counts against (an address, IPv6 by its
                     `limits.ipv6_prefix` network, or a registered client) and its caps
    ConnectionGuard  one worker's book of its connections: admits or refuses a new one,
                     watches each request's headers and body, cuts a body sent too
                     slowly, and frees room when the worker nears its cap
    reclaim_order    who gives way first (a pure function of the book)

The caps (`connections:` in config.yaml), all over the whole host:

- a subject may hold `per_address` open connections (a registered client, known by
  its address at accept time, `per_client`): beyond them a new one gets 429
  `too_many_connections` with Retry-After and is closed;
- and `per_address_unfinished` (`per_client_unfinished`) connections whose request
  body is still coming: beyond them the request gets 429 `too_many_unfinished_requests`
  once its headers are in (a client known by its `X-Api-Key` counts as itself from
  then on), and while they are all taken a new connection from it is refused as soon
  as it is accepted (429, same code), before anything is made for it;
- a connection refused when accepted waits `refusal_hold_s` (jittered) for its answer,
  held open at the cost of one file, up to `held_refusals` per worker: a tool that
  reconnects as soon as it is closed comes back once per hold, instead of thousands
  of times a second whose accepts fill the kernel's accept queue in front of every
  other client (measured: bench/slow_body.py, docs/operations.md);
- a body must come at `min_body_bytes_per_s` after `body_grace_s`: past its deadline
  (never later than `http.body_timeout_s`) it gets 408 `request_timeout` and the
  connection is closed.

When a worker holds `reclaim_at` of its cap, each new connection first frees room:
idle keep-alive connections go first, oldest idle first (closed as an idle timeout
would close them: a client opens another); then connections that have not sent
their headers within `header_grace_s`, and bodies still coming after
`body_grace_s` (both get a 408). A request being answered never gives way. Only
when none of these is left is a new connection refused (503 `overloaded`).

Why per host: the workers share one listening socket, and a client's connections
land on whichever worker accepts them; a per-worker share of the cap would refuse
a client early whenever its connections gather on one worker (fair accepting keeps
the workers' totals even, not each address's). Why a record per worker in each
subject's chain: a worker killed with SIGKILL cannot give its counts back. Its
records stop counting once its heartbeat is older than the stale limit (the same
one fair accepting uses) and are then reused; a worker clears whatever an earlier
holder of its heartbeat cell left before it serves. A trusted proxy
(`limits.trusted_proxies`) is not capped at accept time (all its clients share
its address); the body caps count its clients by X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import heapq
import json
import logging
import math
import random
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream

from observability import metrics
from services import codes
from services.addresses import Network, client_ip, parse_address
from services.callers import Caller
from services.codes import ErrorCode
from services.shared_slots import SharedSlots, key_hash
from settings import ConnectionsSettings, HttpSettings

log = logging.getLogger("jnufm.connections")

# One record: subject tag (0 = empty), worker cell, open connections, unfinished requests.
SLOT: Final = struct.Struct("=QIII")
TAG: Final = struct.Struct("=Q")
EMPTY_TAG: Final = bytes(TAG.size)
# Records of one subject live in one chain of this many slots: one per worker that holds
# its connections (twice the workers during a reload), beside other subjects' records.
CHAIN_SLOTS: Final = 32
CHAIN_BYTES: Final = CHAIN_SLOTS * SLOT.size
# At most this many connections are closed to make room for one new connection.
RECLAIM_BATCH: Final = 32
# A subject refused at accept time is refused again without asking the shared table for
# this long: a tool reconnecting in a loop then costs one table lookup per worker per
# REFUSED_MEMORY_S, and a slot it frees is usable again at most that much later.
REFUSED_MEMORY_S: Final = 0.05
REFUSED_MEMORY: Final = 4096  # subjects remembered at most (then forgotten all at once)
# How often held refusals whose time has come are answered.
HOLD_TICK_S: Final = 0.1

T = TypeVar("T")


class ConnectionTable(SharedSlots):
    """Open and unfinished connections per (subject, worker cell), shared across fork()."""

    slot_size = SLOT.size
    table_name = "jnufm-connections"

    def __init__(self, fd: int, memory: Any, slots: int) -> None:
        if slots < CHAIN_SLOTS:
            raise ValueError(f"a connection table needs at least {CHAIN_SLOTS} slots")
        super().__init__(fd, memory, slots)
        self._starts = slots - CHAIN_SLOTS + 1

    def chain(self, first: int) -> range:
        return range(first, first + CHAIN_SLOTS * self.slot_size, self.slot_size)

    @contextmanager
    def locked(self, first: int, slots: int = CHAIN_SLOTS) -> Iterator[Any]:
        """Hold `slots` slots from byte offset `first` (a chain) exclusively for the block.

        Chains overlap; byte-range locks on overlapping ranges exclude each other, so
        every read-modify-write of a slot is under a lock that covers it.
        """
        length = slots * self.slot_size
        fcntl.lockf(self.fd, fcntl.LOCK_EX, length, first)
        try:
            yield self.memory
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, length, first)

    def connect(self, tag: int, cell: int, caps: Caps, alive: Callable[[int], bool]) -> Admission:
        """Count one more open connection of a subject, unless it holds its cap of open
        connections, or every one of its unfinished-request slots is taken."""
        return self._take(tag, cell, 0, caps, alive)

    def begin(self, tag: int, cell: int, caps: Caps, alive: Callable[[int], bool]) -> Admission:
        """Count one more request of a subject whose body is still coming, unless it
        holds its cap of them."""
        return self._take(tag, cell, 1, caps, alive)

    def disconnect(self, tag: int, cell: int) -> None:
        """One open connection of the subject, counted by this worker, is gone."""
        self._give(tag, cell, 0)

    def end(self, tag: int, cell: int) -> None:
        """One unfinished request of the subject, counted by this worker, is done or gone."""
        self._give(tag, cell, 1)

    def counts(self, tag: int, alive: Callable[[int], bool]) -> tuple[int, int]:
        """A subject's open connections and unfinished requests over the live workers."""
        first = self.chain_start(tag)
        with self.locked(first) as memory:
            opened = unfinished = 0
            for found, owner, o, u in self._records(memory, first):
                if found == tag and alive(owner):
                    opened, unfinished = opened + o, unfinished + u
        return opened, unfinished

    def forget_cell(self, cell: int) -> int:
        """Clear every record of a heartbeat cell (an earlier holder's, dead without
        giving its counts back); returns how many there were."""
        cleared = 0
        for start in range(0, self.slots, CHAIN_SLOTS):
            count = min(CHAIN_SLOTS, self.slots - start)
            first = start * self.slot_size
            with self.locked(first, count) as memory:
                block = memory[first : first + count * self.slot_size]
                for index, (found, owner, _, _) in enumerate(SLOT.iter_unpack(block)):
                    if found and owner == cell:
                        SLOT.pack_into(memory, first + index * self.slot_size, 0, 0, 0, 0)
                        cleared += 1
        return cleared

    def _records(self, memory: Any, first: int) -> Iterator[tuple[int, int, int, int]]:
        return SLOT.iter_unpack(memory[first : first + CHAIN_BYTES])

    # Every new connection and every slow body passes here, and a tool that reconnects
    # in a loop makes thousands a second: the chain is searched for the subject's tag
    # with bytes.find (a C loop), and records are unpacked one by one only to find
    # room for a subject this worker holds no record of.

    def _take(
        self, tag: int, cell: int, which: int, caps: Caps, alive: Callable[[int], bool]
    ) -> Admission:
        first = self.chain_start(tag)
        memory = self.memory
        fcntl.lockf(self.fd, fcntl.LOCK_EX, CHAIN_BYTES, first)  # as locked(), inline: hot
        try:
            block = memory[first : first + CHAIN_BYTES]
            own = -1
            opened = unfinished = 0
            for index in _slots_tagged(block, TAG.pack(tag)):
                _, owner, o, u = SLOT.unpack_from(block, index * SLOT.size)
                if owner == cell:
                    own = index
                elif not alive(owner):
                    continue
                opened, unfinished = opened + o, unfinished + u
            if unfinished >= caps.unfinished:
                return Admission.TOO_MANY_UNFINISHED
            if which == 0 and opened >= caps.open:
                return Admission.TOO_MANY_CONNECTIONS
            if own >= 0:
                _, _, o, u = SLOT.unpack_from(block, own * SLOT.size)
                slot = own
            else:
                o = u = 0
                slot = _free_slot(block, alive)
                if slot < 0:
                    return Admission.UNCOUNTED  # the chain is full of live records: let it in
            if which == 0:
                o += 1
            else:
                u += 1
            SLOT.pack_into(memory, first + slot * SLOT.size, tag, cell, o, u)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, CHAIN_BYTES, first)
        return Admission.COUNTED

    def _give(self, tag: int, cell: int, which: int) -> None:
        first = self.chain_start(tag)
        memory = self.memory
        fcntl.lockf(self.fd, fcntl.LOCK_EX, CHAIN_BYTES, first)
        try:
            block = memory[first : first + CHAIN_BYTES]
            for index in _slots_tagged(block, TAG.pack(tag)):
                _, owner, o, u = SLOT.unpack_from(block, index * SLOT.size)
                if owner == cell:
                    if which == 0:
                        o = max(0, o - 1)
                    else:
                        u = max(0, u - 1)
                    SLOT.pack_into(memory, first + index * SLOT.size, tag, cell, o, u)
                    return
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, CHAIN_BYTES, first)
        # Not found: taken over while this worker's heartbeat looked stale; nothing to give.


def _slots_tagged(block: bytes, needle: bytes) -> Iterator[int]:
    """Indexes of the slots of a chain whose record starts with `needle` (a packed tag)."""
    size = SLOT.size
    pos = block.find(needle)
    while pos >= 0:
        if pos % size == 0:
            yield pos // size
            pos = block.find(needle, pos + size)
        else:  # the bytes happened to match across two fields
            pos = block.find(needle, pos + 1)


def _free_slot(block: bytes, alive: Callable[[int], bool]) -> int:
    """A slot a new record may take: an empty one, else one that holds nothing that
    still counts (no connections, or a dead worker's); -1 if none."""
    for index in _slots_tagged(block, EMPTY_TAG):
        return index
    for index, (_, owner, o, u) in enumerate(SLOT.iter_unpack(block)):
        if (o == 0 and u == 0) or not alive(owner):
            return index
    return -1


class Admission(enum.Enum):
    COUNTED = "counted"
    UNCOUNTED = "uncounted"  # no room in the table to count it: let in (the worker cap holds)
    TOO_MANY_CONNECTIONS = codes.TOO_MANY_CONNECTIONS.code
    TOO_MANY_UNFINISHED = codes.TOO_MANY_UNFINISHED_REQUESTS.code


@dataclass(frozen=True, slots=True)
class Caps:
    open: int
    unfinished: int


@dataclass(frozen=True, slots=True)
class Subject:
    """What a connection counts against: Caller.key ("a|<address>" or "c|<client>")."""

    key: str
    tag: int
    scope: str  # "ip" or "client", as in the rate limits' metrics
    caps: Caps


def heartbeat_liveness(
    last_beat: Callable[[int], float], stale_s: float, clock: Callable[[], float] = time.monotonic
) -> Callable[[int], bool]:
    """Whether a worker cell's records count: its loop beat within stale_s."""

    def alive(cell: int) -> bool:
        return last_beat(cell) >= clock() - stale_s

    return alive


def everyone_alive(cell: int) -> bool:
    """One process serves alone (`processes: 1`, tests): every record is its own."""
    return True


# --- answers to refused and cut connections ---------------------------------------------

REASONS: Final = {
    408: "Request Timeout",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def refusal_answer(error: ErrorCode, message: str, retry_after_s: int | None) -> bytes:
    """A whole HTTP answer that ends the connection: JSON that both the 2013 clients
    (`data`) and the /v1/ clients (`error`) read, and Retry-After."""
    body = json.dumps(
        {"data": None, "error": {"code": error.code, "message": message}}, separators=(",", ":")
    ).encode()
    retry = f"Retry-After: {retry_after_s}\r\n" if retry_after_s is not None else ""
    head = (
        f"HTTP/1.1 {error.status} {REASONS[error.status]}\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{retry}"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def answer_socket(sock: socket.socket, answer: bytes) -> None:
    """Write a short answer straight to the socket (it fits its buffer), without closing.

    What the client sent and nobody read is read first: a socket closed with unread
    data ends with a reset, which may cost the client the answer."""
    # Failing means the client is gone or reads nothing: closing is all that is left.
    with contextlib.suppress(OSError):
        sock.recv(65536, socket.MSG_DONTWAIT)
    with contextlib.suppress(OSError):
        sock.send(answer, socket.MSG_DONTWAIT)


def answer_and_close(stream: IOStream, answer: bytes) -> None:
    """answer_socket, then close the stream."""
    if stream.socket is not None:
        answer_socket(stream.socket, answer)
    stream.close()


# --- who gives way ----------------------------------------------------------------------

IDLE: Final = "idle_under_pressure"
SLOW_HEADERS: Final = "slow_headers"
SLOW_BODY: Final = "slow_body"


def reclaim_order(
    need: int,
    now: float,
    idle: Iterable[tuple[T, float, bool]],
    fresh: Iterable[tuple[T, float]],
    reading: Iterable[tuple[T, float]],
    header_grace_s: float,
    body_grace_s: float,
) -> list[tuple[T, str]]:
    """Up to `need` connections to close to make room, with why, first to last.

    idle: keep-alive connections waiting for their next request, as (connection, idle
    since, some of a request already received), oldest first. fresh: connections that
    have not sent a whole request head yet, (connection, since accepted), oldest first.
    reading: requests whose body is still coming, (connection, since its headers),
    oldest first. Idle ones go first; one that has begun sending a request is not idle
    and goes only when it is as slow as a fresh one. A request being answered is in
    none of these and never goes.
    """
    chosen: list[tuple[T, str]] = []
    headers_due = now - header_grace_s
    for item, since, receiving in idle:
        if len(chosen) >= need:
            return chosen
        if not receiving:
            chosen.append((item, IDLE))
        elif since <= headers_due:
            chosen.append((item, SLOW_HEADERS))
    for item, since in fresh:
        if len(chosen) >= need or since > headers_due:
            break
        chosen.append((item, SLOW_HEADERS))
    body_due = now - body_grace_s
    for item, since in reading:
        if len(chosen) >= need or since > body_due:
            break
        chosen.append((item, SLOW_BODY))
    return chosen


def body_deadline_s(length: int, settings: ConnectionsSettings, body_timeout_s: float) -> float:
    """How long a body of `length` bytes may take: the grace, then the minimum rate;
    never longer than http.body_timeout_s."""
    return min(body_timeout_s, settings.body_grace_s + length / settings.min_body_bytes_per_s)


# --- one worker's book ------------------------------------------------------------------


class EventCounts:
    """Counts refusals and cuts by kind, and says when one is worth a log line: the first,
    then at most one per LOG_EVERY_S with how many came since (a tool that reconnects in
    a loop is refused thousands of times a second; a log record costs more than the
    refusal). Every one of them is in the metrics."""

    LOG_EVERY_S: Final = 10.0

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last logged at, since then)

    def due(self, kind: str) -> int:
        """Count one event; the events to log now (this one included), or 0: not yet."""
        now = self._clock()
        logged_at, count = self._seen.get(kind, (-math.inf, 0))
        count += 1
        if now - logged_at < self.LOG_EVERY_S:
            self._seen[kind] = (logged_at, count)
            return 0
        self._seen[kind] = (now, 0)
        return count


class Connection:
    """One open connection, as the guard sees it."""

    __slots__ = ("closing", "peer", "since", "stream", "subject", "timer", "unfinished")

    def __init__(self, stream: IOStream, peer: str, subject: Subject | None, now: float) -> None:
        self.stream = stream
        self.peer = peer
        self.subject = subject  # counted as open against it (None: not counted)
        self.unfinished: Subject | None = None  # counted as unfinished against it
        self.since = now  # when it entered its present state
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False


# Who a request from this address (and with this X-Api-Key) comes from.
Identify = Callable[[str, str | None], Caller]


class ConnectionGuard:
    """One worker's connections: the per-subject caps, slow-client cuts, and room made
    near the worker's cap (see the module docstring)."""

    def __init__(
        self,
        table: ConnectionTable,
        cell: int,
        alive: Callable[[int], bool],
        settings: ConnectionsSettings,
        http: HttpSettings,
        max_connections: int,
        identify: Identify,
        trusted_proxies: Sequence[Network] = (),
        hold_room: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.cell = cell
        self.alive = alive
        self.settings = settings
        self.http = http
        self.identify = identify
        self.trusted = tuple(trusted_proxies)
        self.clock = clock
        self.anonymous_caps = Caps(settings.per_address, settings.per_address_unfinished)
        self.client_caps = Caps(settings.per_client, settings.per_client_unfinished)
        # From this many open connections on, each new one first makes room.
        self.reclaim_from = max(1, math.ceil(max_connections * settings.reclaim_at))
        self.book: dict[IOStream, Connection] = {}
        self.idle: OrderedDict[IOStream, Connection] = OrderedDict()
        self.fresh: OrderedDict[IOStream, Connection] = OrderedDict()
        self.reading: OrderedDict[IOStream, Connection] = OrderedDict()
        self.closing = 0  # closed by the guard, not yet reported closed by the server
        # Subjects refused at accept time just now: key -> (until when, why).
        self.refused: dict[str, tuple[float, Admission]] = {}
        # The connection screened last, until the server serves it: socket, peer, subject.
        self.screened: tuple[socket.socket, str, Subject | None] | None = None
        # Refused connections waiting for their answer: a heap of (when, n, socket, answer).
        self.held: list[tuple[float, int, socket.socket, bytes]] = []
        self.held_count = 0
        self.hold_room = hold_room  # how many may wait at once (files beyond the cap)
        self.hold_timer: asyncio.TimerHandle | None = None
        retry = settings.retry_after_s
        self.answers = {
            ("ip", Admission.TOO_MANY_CONNECTIONS): refusal_answer(
                codes.TOO_MANY_CONNECTIONS,
                "this address holds too many connections; reuse one or try again shortly",
                retry,
            ),
            ("client", Admission.TOO_MANY_CONNECTIONS): refusal_answer(
                codes.TOO_MANY_CONNECTIONS,
                "this client holds too many connections; reuse one or try again shortly",
                retry,
            ),
            ("ip", Admission.TOO_MANY_UNFINISHED): refusal_answer(
                codes.TOO_MANY_UNFINISHED_REQUESTS,
                "this address has too many requests still being sent; finish one first",
                retry,
            ),
            ("client", Admission.TOO_MANY_UNFINISHED): refusal_answer(
                codes.TOO_MANY_UNFINISHED_REQUESTS,
                "this client has too many requests still being sent; finish one first",
                retry,
            ),
        }
        self.too_slow = refusal_answer(
            codes.REQUEST_TIMEOUT, "the request was not sent in time; send it again", None
        )
        self.events = EventCounts(clock)

    # --- accepting ----------------------------------------------------------------

    def make_room(self, held: int) -> int:
        """Near the cap, close connections that give way (reclaim_order) so that a new
        one fits; returns the connections still held."""
        held -= self.closing
        if held < self.reclaim_from:
            return held
        need = min(RECLAIM_BATCH, held - self.reclaim_from + 1)
        chosen = reclaim_order(
            need,
            self.clock(),
            ((c, c.since, _receiving(c.stream)) for c in self.idle.values()),
            ((c, c.since) for c in self.fresh.values()),
            ((c, c.since) for c in self.reading.values()),
            self.settings.header_grace_s,
            self.settings.body_grace_s,
        )
        return held - sum(self.cut(connection, reason) for connection, reason in chosen)

    def screen(self, sock: socket.socket, address: Any) -> bool:
        """Count a connection just accepted against its subject (before anything else is
        made for it); False: over a cap, refused (held for its answer, or answered)."""
        self.withdraw()  # one screened but never admitted (its stream failed): give it back
        parsed = parse_address(address[0]) if isinstance(address, tuple) and address else None
        # An IPv4 client of a dual-stack socket comes as ::ffff:a.b.c.d: counted as a.b.c.d.
        peer = str(parsed) if parsed is not None else ""
        subject = None
        if peer and not _in(peer, self.trusted):
            subject = self.subject_of(self.identify(peer, None))
            now = self.clock()
            recent = self.refused.get(subject.key)
            if recent is not None and now < recent[0]:
                verdict = recent[1]
            else:
                verdict = self.table.connect(subject.tag, self.cell, subject.caps, self.alive)
            if verdict is Admission.UNCOUNTED:
                subject = None
            elif verdict is not Admission.COUNTED:
                if recent is None or now >= recent[0]:
                    if len(self.refused) >= REFUSED_MEMORY:
                        self.refused.clear()
                    self.refused[subject.key] = (now + REFUSED_MEMORY_S, verdict)
                self.turn_away(sock, subject, verdict)
                return False
        self.screened = (sock, peer, subject)
        return True

    def admit(self, stream: IOStream) -> None:
        """The connection screened last, now a stream the server serves."""
        screened, self.screened = self.screened, None
        if screened is None or screened[0] is not stream.socket:
            self.screened = screened
            self.withdraw()
            screened = (stream.socket, "", None)
        _, peer, subject = screened
        connection = Connection(stream, peer, subject, self.clock())
        self.book[stream] = connection
        self.fresh[stream] = connection

    def withdraw(self) -> None:
        """The connection screened last will not be served (the worker is full): uncount it."""
        screened, self.screened = self.screened, None
        if screened is not None and screened[2] is not None:
            self.table.disconnect(screened[2].tag, self.cell)

    def subject_of(self, caller: Caller) -> Subject:
        client = caller.client is not None
        return Subject(
            caller.key,
            key_hash(caller.key),
            caller.scope,
            self.client_caps if client else self.anonymous_caps,
        )

    def turn_away(self, sock: socket.socket, subject: Subject, verdict: Admission) -> None:
        """A connection over its subject's cap, refused at accept time: its answer waits
        `refusal_hold_s` (while there is room to hold it), then it is closed. A tool that
        reconnects at once when closed so reconnects once per hold, not as fast as it
        can: thousands of refusals a second would take the CPU everyone else needs."""
        self.count_refusal(subject, verdict)
        answer = self.answers[(subject.scope, verdict)]
        hold_s = self.settings.refusal_hold_s
        if len(self.held) >= self.hold_room or hold_s <= 0:
            answer_socket(sock, answer)
            sock.close()
            return
        # Each held a little more or less: a crowd refused at once is not answered at once,
        # or it would come back at once, again and again.
        self.held_count += 1
        when = self.clock() + hold_s * (0.5 + random.random())
        heapq.heappush(self.held, (when, self.held_count, sock, answer))
        if self.hold_timer is None:
            self.hold_timer = asyncio.get_running_loop().call_later(HOLD_TICK_S, self.answer_held)

    def answer_held(self, everyone: bool = False) -> None:
        """Answer and close the held refusals whose time has come (or all of them)."""
        self.hold_timer = None
        now = self.clock()
        held = self.held
        while held and (everyone or held[0][0] <= now):
            _, _, sock, answer = heapq.heappop(held)
            answer_socket(sock, answer)
            sock.close()
        if held:
            self.hold_timer = asyncio.get_running_loop().call_later(HOLD_TICK_S, self.answer_held)

    def stop(self) -> None:
        """The worker stops: answer every held refusal now."""
        if self.hold_timer is not None:
            self.hold_timer.cancel()
        self.answer_held(everyone=True)
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None

    def refuse(self, stream: IOStream, subject: Subject, verdict: Admission) -> None:
        """A request over its subject's cap of unfinished requests: answered at once."""
        self.count_refusal(subject, verdict)
        answer_and_close(stream, self.answers[(subject.scope, verdict)])

    def count_refusal(self, subject: Subject, verdict: Admission) -> None:
        metrics.record_connection_refused(verdict.value, subject.scope)
        count = self.events.due(verdict.value)
        if count:
            # Two templates: the log's repeat filter counts each kind of refusal apart.
            if verdict is Admission.TOO_MANY_CONNECTIONS:
                log.warning(
                    "%s holds too many connections; answering 429 (%d such refusals)",
                    subject.key[2:],
                    count,
                )
            else:
                log.warning(
                    "%s has too many requests still being sent; answering 429 (%d such refusals)",
                    subject.key[2:],
                    count,
                )

    # --- requests -----------------------------------------------------------------

    def watch(
        self,
        stream: IOStream,
        request_conn: httputil.HTTPConnection,
        delegate: httputil.HTTPMessageDelegate,
    ) -> httputil.HTTPMessageDelegate:
        """The delegate of the connection's next request, watched: the connection now
        waits for it (a keep-alive connection that answered one is idle)."""
        connection = self.book.get(stream)
        if connection is None or connection.closing:
            return delegate
        if stream not in self.fresh:  # not its first request: it answered one
            connection.since = self.clock()
            self.idle[stream] = connection
        return WatchedRequest(self, connection, request_conn, delegate)

    def headers_in(
        self,
        connection: Connection,
        request_conn: httputil.HTTPConnection,
        headers: httputil.HTTPHeaders,
    ) -> bool:
        """A request's headers are in: if its body is still to come, count it and give
        it a deadline. False: refused (answered and closed)."""
        stream = connection.stream
        if self.idle.pop(stream, None) is None:
            self.fresh.pop(stream, None)
        chunked = bool(headers.get_list("Transfer-Encoding"))
        length = _declared_length(headers)
        if not chunked and (length == 0 or length <= _buffered(stream)):
            return True  # the whole request is in: nothing to wait for
        subject = self.subject_of(self.identify(self.peer_of(connection, headers), _key(headers)))
        verdict = self.table.begin(subject.tag, self.cell, subject.caps, self.alive)
        if verdict is Admission.COUNTED:
            connection.unfinished = subject
        elif verdict is not Admission.UNCOUNTED:
            self.refuse(stream, subject, verdict)
            return False
        connection.since = self.clock()
        self.reading[stream] = connection
        limit = self.http.max_body_bytes if chunked else length
        delay = body_deadline_s(limit, self.settings, self.http.body_timeout_s)
        connection.timer = asyncio.get_running_loop().call_later(
            delay, self.cut, connection, SLOW_BODY
        )
        if isinstance(request_conn, HTTP1Connection):
            # Tornado's own body timeout stays the backstop, a little after ours.
            request_conn.set_body_timeout(delay + 1.0)
        return True

    def peer_of(self, connection: Connection, headers: httputil.HTTPHeaders) -> str:
        """The client's address: a trusted proxy's client by X-Forwarded-For."""
        if not self.trusted or not connection.peer:
            return connection.peer
        forwarded = ",".join(headers.get_list("X-Forwarded-For")) or None
        return client_ip(connection.peer, forwarded, self.trusted)

    def body_in(self, connection: Connection) -> None:
        """The request's body is all in, or its connection is gone."""
        self._body_done(connection)

    def _body_done(self, connection: Connection) -> None:
        self.reading.pop(connection.stream, None)
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        subject, connection.unfinished = connection.unfinished, None
        if subject is not None:
            self.table.end(subject.tag, self.cell)

    # --- closing ------------------------------------------------------------------

    def cut(self, connection: Connection, reason: str) -> bool:
        """Close a connection that gives way (with a 408 if it was sending a request);
        False if it was closed already."""
        stream = connection.stream
        if connection.closing or stream.closed():
            return False
        connection.closing = True
        self.closing += 1
        # Out of every list at once: the server reports it closed only later, and until
        # then the next new connection must not choose it again.
        self.idle.pop(stream, None)
        self.fresh.pop(stream, None)
        self._body_done(connection)
        metrics.record_connection_cut(reason)
        if reason == IDLE:
            stream.close()
        else:
            count = self.events.due(reason)
            if count:
                log.info(
                    "%s: %s; answering 408 (%d such cuts)",
                    connection.peer,
                    reason.replace("_", " "),
                    count,
                )
            answer_and_close(stream, self.too_slow)
        return True

    def closed(self, stream: IOStream) -> None:
        """The server reports a connection closed: give back what it counted."""
        connection = self.book.pop(stream, None)
        if connection is None:
            return
        self.idle.pop(stream, None)
        self.fresh.pop(stream, None)
        self._body_done(connection)
        if connection.closing:
            self.closing -= 1
        if connection.subject is not None:
            self.table.disconnect(connection.subject.tag, self.cell)


class WatchedRequest(httputil.HTTPMessageDelegate):
    """A request's delegate, with the guard told when its headers and body are in."""

    __slots__ = ("_connection", "_guard", "_inner", "_refused", "_request_conn")

    def __init__(
        self,
        guard: ConnectionGuard,
        connection: Connection,
        request_conn: httputil.HTTPConnection,
        inner: httputil.HTTPMessageDelegate,
    ) -> None:
        self._guard = guard
        self._connection = connection
        self._request_conn = request_conn
        self._inner = inner
        self._refused = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if not self._guard.headers_in(self._connection, self._request_conn, headers):
            self._refused = True
            return None
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._refused:
            return None
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._guard.body_in(self._connection)
        if not self._refused:
            self._inner.finish()

    def on_connection_close(self) -> None:
        self._guard.body_in(self._connection)
        if not self._refused:
            self._inner.on_connection_close()


def _declared_length(headers: httputil.HTTPHeaders) -> int:
    values = headers.get_list("Content-Length")
    text = values[0].split(",")[0].strip() if values else ""
    return int(text) if text.isdigit() else 0


def _key(headers: httputil.HTTPHeaders) -> str | None:
    values = headers.get_list("X-Api-Key")
    return ",".join(values) if values else None


def _buffered(stream: IOStream) -> int:
    """Bytes the stream has read and not yet handed out (Tornado keeps the count in a
    private attribute, stable since Tornado 4; 0 if it ever goes)."""
    return int(getattr(stream, "_read_buffer_size", 0))


def _receiving(stream: IOStream) -> bool:
    """Part of a request has arrived on a connection that waits for one."""
    return _buffered(stream) > 0


def _in(ip: str, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return False
    address = parse_address(ip)
    return address is not None and any(address in net for net in networks)
