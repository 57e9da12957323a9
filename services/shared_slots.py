"""Fixed-size tables of records in memory shared by every worker of a host.

The master creates a table before it forks; every worker (of every
generation) inherits the mapping and the file descriptor. A record lives in
one of `CHAIN` consecutive slots starting at its key's hash; updating a
record holds an fcntl byte-range lock on that chain, so two workers never
interleave a read-modify-write of one key. fcntl locks belong to a process
and the kernel drops them when it dies: a worker killed mid-update cannot
wedge the others. One table must not be used from several threads of a
process at once (a Tornado worker has one thread).

Used by the per-address rate limits (services/limits.py) and by the
credential gate's per-host state (services/gate.py).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Final, Self

# Slots a key may occupy, starting at its hash. A chain never wraps, so one
# byte-range lock covers it.
CHAIN: Final = 8
HASH_MASK: Final = (1 << 64) - 1


def key_hash(key: str) -> int:
    """A 64-bit tag for key, never 0 (0 marks an empty slot).

    hash() of a str is the same in every process forked from one master and
    keyed per run, so no one can aim many keys at one chain.
    """
    return (hash(key) & HASH_MASK) or 1


class SharedSlots:
    """`slots` records of `slot_size` bytes in shared memory, with per-chain locks.

    A subclass names its record size and its table (for /proc/<pid>/maps).
    """

    slot_size: ClassVar[int]
    table_name: ClassVar[str]

    def __init__(self, fd: int, memory: mmap.mmap, slots: int) -> None:
        self.fd = fd
        self.memory = memory
        self.slots = slots
        self._starts = slots - CHAIN + 1

    @classmethod
    def create(cls, slots: int) -> Self:
        """A zeroed table (every slot empty)."""
        if slots < CHAIN:
            raise ValueError(f"a shared table needs at least {CHAIN} slots")
        size = slots * cls.slot_size
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create(cls.table_name, os.MFD_CLOEXEC)
        else:  # not Linux: an unlinked temporary file serves the same purpose
            fd, path = tempfile.mkstemp(prefix=f"{cls.table_name}-")
            os.unlink(path)
        os.ftruncate(fd, size)
        memory = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        return cls(fd, memory, slots)

    def chain_start(self, tag: int) -> int:
        """Byte offset of the first slot of the chain a tag lives in."""
        return (tag % self._starts) * self.slot_size

    def chain(self, first: int) -> range:
        """Byte offsets of the slots of the chain starting at `first`."""
        return range(first, first + CHAIN * self.slot_size, self.slot_size)

    @contextmanager
    def locked(self, first: int) -> Iterator[mmap.mmap]:
        """Hold the chain starting at `first` exclusively for the block."""
        length = CHAIN * self.slot_size
        fcntl.lockf(self.fd, fcntl.LOCK_EX, length, first)
        try:
            yield self.memory
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, length, first)

    def close(self) -> None:
        self.memory.close()
        os.close(self.fd)
