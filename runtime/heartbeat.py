"""Worker heartbeats in memory shared between the master and its forked workers.

The master maps an anonymous shared page before forking and gives each worker
one cell. The worker's event loop writes `time.monotonic()` into its cell
every `supervisor.heartbeat_interval_s`; CLOCK_MONOTONIC is the same clock in
every process, so the master reads the age of each worker's last beat
directly. A cell still 0 means the worker has not started serving yet. A
loop blocked by synchronous code stops beating, whatever the process still
does, which a pipe or a signal check would not show as directly.
"""

from __future__ import annotations

import mmap
import struct
import time

_CELL = struct.Struct("d")


class HeartbeatTable:
    """`size` cells of one double each, shared with every worker forked after it."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._map = mmap.mmap(-1, size * _CELL.size, flags=mmap.MAP_SHARED)
        self._free = list(range(size - 1, -1, -1))

    def allocate(self) -> int:
        """A free cell, reset to "not serving yet". Raises RuntimeError when all are used."""
        if not self._free:
            raise RuntimeError("no free heartbeat cell")
        cell = self._free.pop()
        _CELL.pack_into(self._map, cell * _CELL.size, 0.0)
        return cell

    def release(self, cell: int) -> None:
        self._free.append(cell)

    def beat(self, cell: int) -> None:
        """Called by the worker: its loop is alive now."""
        _CELL.pack_into(self._map, cell * _CELL.size, time.monotonic())

    def last_beat(self, cell: int) -> float:
        """The monotonic time of the cell's last beat, 0.0 if none yet."""
        value: float = _CELL.unpack_from(self._map, cell * _CELL.size)[0]
        return value
