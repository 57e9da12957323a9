"""When a query must be answered: its deadline, brought closer when the worker starts
stopping; and what a client gets when nothing came by then."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.errors import SchoolTimedOut, ServiceError, ShuttingDown


class Deadlines:
    """The query deadline of one system's pipeline (`api.deadline_s`), and the worker's
    stop (`stop_by`: when this worker must have answered everything, else None)."""

    def __init__(self, deadline_s: float, stop_by: Callable[[], float | None]) -> None:
        self._deadline_s = deadline_s
        self._stop_by = stop_by

    def start(self) -> float:
        """When a query starting now must be answered (time.monotonic())."""
        return time.monotonic() + self._deadline_s

    def until(self, deadline: float) -> float:
        """A query's deadline, or sooner if this worker is stopping meanwhile."""
        stop_by = self._stop_by()
        return deadline if stop_by is None else min(deadline, stop_by)

    def too_late(self, name: str) -> ServiceError:
        """What a client gets when the school did not answer by the deadline (no stale
        answer): 503 while the worker stops, else 504."""
        if self._stop_by() is not None:
            return ShuttingDown()
        return SchoolTimedOut(f"{name} did not answer in time")
