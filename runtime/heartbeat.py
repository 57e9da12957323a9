"""Worker heartbeats and connection counts in memory shared between the master and
its forked workers.

The master maps an anonymous shared page before forking and gives each worker
one cell. The worker's event loop writes `time.monotonic()` into its cell
every `supervisor.heartbeat_interval_s`; CLOCK_MONOTONIC is the same clock in
every process, so the master reads the age of each worker's last beat
directly. A cell still 0 means the worker has not started serving yet. A
loop blocked by synchronous code stops beating, whatever the process still
does, which a pipe or a signal check would not show as directly.

Each cell also holds the worker's open connections and whether it is
accepting new ones, so that a worker can tell whether it holds more than its
share (see `fair_to_accept` and docs/process-model.md).
"""

from __future__ import annotations

import mmap
import struct
import time

# beat (monotonic seconds), open connections, accepting (0/1)
_CELL = struct.Struct("dqq")
# The header: one past the highest cell ever handed out (cells are scanned up to it).
_HEAD = struct.Struct("q")


class HeartbeatTable:
    """`size` cells, shared with every worker forked after it."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._map = mmap.mmap(-1, _HEAD.size + size * _CELL.size, flags=mmap.MAP_SHARED)
        self._free = list(range(size - 1, -1, -1))

    def _at(self, cell: int) -> int:
        return _HEAD.size + cell * _CELL.size

    def allocate(self) -> int:
        """A free cell, reset to "not serving yet". Raises RuntimeError when all are used."""
        if not self._free:
            raise RuntimeError("no free heartbeat cell")
        self._free.sort(reverse=True)  # the lowest first: keeps the scanned range short
        cell = self._free.pop()
        _CELL.pack_into(self._map, self._at(cell), 0.0, 0, 0)
        high = _HEAD.unpack_from(self._map, 0)[0]
        if cell + 1 > high:
            _HEAD.pack_into(self._map, 0, cell + 1)
        return cell

    def release(self, cell: int) -> None:
        """The worker is gone: its connections no longer count."""
        beat = self.last_beat(cell)
        _CELL.pack_into(self._map, self._at(cell), beat, 0, 0)
        self._free.append(cell)

    def beat(self, cell: int) -> None:
        """Called by the worker: its loop is alive now."""
        struct.pack_into("d", self._map, self._at(cell), time.monotonic())

    def last_beat(self, cell: int) -> float:
        """The monotonic time of the cell's last beat, 0.0 if none yet."""
        value: float = struct.unpack_from("d", self._map, self._at(cell))[0]
        return value

    def set_connections(self, cell: int, connections: int, accepting: bool) -> None:
        """Called by the worker: how many connections it holds, and whether it is one of
        the workers new connections may go to (not stopping)."""
        struct.pack_into("qq", self._map, self._at(cell) + 8, connections, int(accepting))

    def connections(self, cell: int) -> tuple[int, bool]:
        count, accepting = struct.unpack_from("qq", self._map, self._at(cell) + 8)
        return int(count), bool(accepting)

    def fair_to_accept(self, cell: int, mine: int, stale_s: float) -> bool:
        """May the worker of `cell`, holding `mine` connections, take a new one: it holds
        no more than the least loaded of the other accepting workers (or is alone).

        A worker whose loop has not beaten for `stale_s` does not count: a stuck
        worker must not keep the others from accepting until the master replaces it.
        """
        high = _HEAD.unpack_from(self._map, 0)[0]
        view = memoryview(self._map)[_HEAD.size : _HEAD.size + high * _CELL.size]
        alive_since = time.monotonic() - stale_s
        try:
            for index, (beat, count, accepting) in enumerate(_CELL.iter_unpack(view)):
                if accepting and count < mine and index != cell and beat >= alive_since:
                    return False
        finally:
            view.release()
        return True
