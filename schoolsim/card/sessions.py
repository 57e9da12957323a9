"""In-memory card center sessions (JSESSIONID) with idle expiry."""

import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date

from schoolsim.card.dataset import Row


@dataclass
class Session:
    """One browser session and where it stands in the login and query chains."""

    sid: str
    last_seen: float
    # The load balancer's cookie value (setting extra_cookie), sent with the session's.
    extra: str = ""
    captcha: str | None = None
    # What each of the 12 keys of the latest keypad shows.
    keypad: list[str] | None = None
    stuid: str | None = None
    # The today form was fetched, so its POST is in order (2013 markup).
    today_ready: bool = False
    # History chain: 0 none, 1 account form seen, 2 date form seen, 3 dates accepted.
    his_step: int = 0
    his_range: tuple[date, date] | None = None
    # The later platform's history continuations: key -> the chain step it continues.
    flow: dict[str, int] = field(default_factory=dict)
    # Rows of the last today/history query, newest first, for paging, and its range.
    last_query: list[Row] | None = field(default=None, repr=False)
    last_range: tuple[date, date] | None = None

    def reset_chains(self) -> None:
        """Forget any query in progress (on login)."""
        self.today_ready = False
        self.his_step = 0
        self.his_range = None
        self.flow.clear()
        self.last_query = None
        self.last_range = None


class SessionStore:
    """All live sessions, indexed by id and by logged-in student.

    At most `max_sessions` are kept: past that, the least recently used one is
    forgotten (as a real server's session manager caps its sessions), so a long
    run or a flood of logins cannot grow the simulator's memory without bound.
    """

    # Sweep expired sessions after this many creations, so abandoned ones do not pile up.
    _SWEEP_EVERY = 512

    def __init__(self, rng: random.Random, max_sessions: int = 20000) -> None:
        """Sessions get ids drawn from rng (the app's seeded generator)."""
        self._rng = rng
        self._max = max_sessions
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._by_student: dict[str, set[str]] = {}
        self._created = 0

    def __len__(self) -> int:
        """Number of sessions held (call sweep first for an exact live count)."""
        return len(self._by_id)

    def get(self, sid: str | None, idle_s: float) -> Session | None:
        """The live session with this id (touched), or None if unknown or expired."""
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > idle_s:
            self._drop(session)
            return None
        session.last_seen = now
        self._by_id.move_to_end(sid)
        return session

    def create(self, idle_s: float) -> Session:
        """A new, not logged-in session."""
        self._created += 1
        if self._created % self._SWEEP_EVERY == 0:
            self.sweep(idle_s)
        while True:
            sid = f"{self._rng.getrandbits(128):032X}"
            if sid not in self._by_id:
                break
        session = Session(sid=sid, last_seen=time.monotonic())
        self._by_id[sid] = session
        while len(self._by_id) > self._max:
            oldest = next(iter(self._by_id.values()))
            self._drop(oldest)
        return session

    def login(self, session: Session, stuid: str, kick_others: bool) -> None:
        """Mark session logged in as stuid, throwing out the student's others if asked."""
        self._unindex(session)
        if kick_others:
            for sid in list(self._by_student.get(stuid, ())):
                other = self._by_id.get(sid)
                if other is not None and other is not session:
                    self._drop(other)
        session.stuid = stuid
        session.reset_chains()
        self._by_student.setdefault(stuid, set()).add(session.sid)

    def sweep(self, idle_s: float) -> None:
        """Forget every expired session."""
        now = time.monotonic()
        for session in [s for s in self._by_id.values() if now - s.last_seen > idle_s]:
            self._drop(session)

    def clear(self) -> None:
        """Forget every session."""
        self._by_id.clear()
        self._by_student.clear()

    def _unindex(self, session: Session) -> None:
        if session.stuid is not None:
            sids = self._by_student.get(session.stuid)
            if sids is not None:
                sids.discard(session.sid)
                if not sids:
                    del self._by_student[session.stuid]
        session.stuid = None

    def _drop(self, session: Session) -> None:
        self._unindex(session)
        self._by_id.pop(session.sid, None)
