"""The second cache level: answers every worker of a host reads, in an LMDB file.

    worker memory (services/cache.py) -> this host's shared cache -> the database

A worker's memory dies with it. A reload (SIGHUP) or the replacement of a
crashed worker used to start with an empty cache; while the database was away
the new workers had nowhere to read warm answers from, and answered 503. Every
answer stored (`Storage.save`) and every answer read from the database is also
written here, so a new worker finds them at once, with or without a database.
Whom an answer may be served to is not decided here but by the credential
gate (services/gate.py), whose per-host state lives in memory the master
maps: it outlives workers too, so a new worker still knows the passwords the
school last accepted while the database is away.

Why LMDB (the `lmdb` package, LMDB 0.9):

- many processes read and write one memory-mapped B-tree, with no server: a
  read is a lookup in pages the kernel already holds, without a system call
  or a lock (MVCC readers never wait for the writer); writers take one
  robust mutex, which a worker killed mid-write does not leave held;
- keys are ordered, so an index by time gives "the oldest answers" for
  eviction in one cursor walk;
- it outlives the master: a full restart during an outage keeps the answers.

The master's shared memory (services/shared_slots.py) holds fixed-size
records; answers range from 100 bytes to a cover's hundreds of KB, which
would need an allocator of our own there.

Layout (three named databases): `entries` maps a key (8 bytes naming the
database the answers come from, then the 32 bytes of `db.queries.result_key`)
to the answer's `fetched_at` (microseconds since the epoch, 8 bytes) and its
JSON; `by_age` holds `fetched_at` + key, empty, in time order; `meta` holds
the bytes counted. The database's name is in the key because tests, tools and
a moved database may share one file: an answer is read only by the database
it came from.

Bounds: `cache.shared_mb` bounds the file space the answers take, counted
pessimistically (an answer's entry and index key in B-tree pages that splits
leave half full, a value over half a page in whole pages of its own: a
200-byte balance counts ~650 bytes). A write that would pass it first
removes the oldest answers, `cache.shared_evict_share` of the budget in one
batch. The map is twice the budget, room for LMDB's copy-on-write and pages
freed but not reusable yet (60,000 writes of 20 B to 9 KB answers into a
1 MB budget never filled its 2 MB map); should it fill anyway, half the
answers go, then all. An answer counting more than 1/16 of the budget is not
kept here (memory and the database keep it). An answer older than
`cache.max_stale_s` is never served.

Failures never fail a request, and the file is never trusted blindly:

- an LMDB error is logged once, and this process carries on without the
  shared level (memory and the database) until it is replaced;
- a file that cannot be opened (not LMDB, another version) is deleted and
  made again, and so is one LMDB finds damaged while it is used (another
  process that made it again first is followed, not undone);
- writes are not flushed to disk (a request never waits for an fsync), so
  a machine that stopped without flushing may leave a torn file: the file
  remembers the boot it was written in (`/proc/sys/kernel/random/boot_id`)
  and is made again after a reboot; where the system has no boot id, every
  write is flushed instead;
- LMDB keeps no checksums: a page number damaged on disk could send a read
  outside the file and kill the process (SIGBUS). Each process using the
  file marks it (a file `open.<pid>` beside it, removed when it closes the
  file); the next process to open a file that a dead process had marked
  first has a child process read every page, and if the child dies or
  fails, the file is made again. So damage kills at most one process, never
  each replacement or restart in turn. (A killed worker costs the next one
  that walk: 0.1 s for a 47 MB file of 100,000 answers, measured.)

An LMDB environment must not cross a fork: each worker opens it after the
fork (runtime/wiring.py), and the master never does. LMDB also refuses a
second open of one file in a process (tests build several apps in one), so
the opens of a process share one environment, closed with the last of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

import lmdb
from sqlalchemy.engine import make_url

from db.queries import result_key
from services.cache import CacheKey
from services.leases import pid_alive
from settings import CacheSettings

log = logging.getLogger("jnufm.shared_cache")

R = TypeVar("R")

_STAMP: Final = struct.Struct(">q")  # fetched_at in microseconds; big-endian sorts by time
_TOTAL: Final = struct.Struct("<Q")
_TOTAL_KEY: Final = b"bytes"
NAMESPACE_BYTES: Final = 8
KEY_BYTES: Final = NAMESPACE_BYTES + 32
# LMDB's bytes around a key and value in a page (node header, the page's pointer to it),
# before an overflow value, and in place of one.
NODE_BYTES: Final = 10
OVERFLOW_HEADER: Final = 16
PAGE_NUMBER_BYTES: Final = 8
HALF_FULL: Final = 2
# One answer may take at most this share of the budget.
MAX_ENTRY_SHARE: Final = 16
# The map holds this many times the budget (half-empty B-tree pages, copy-on-write).
MAP_FACTOR: Final = 2
DATABASES: Final = (b"entries", b"by_age", b"meta")
# What LMDB says of a file it finds damaged: the file is made again.
DAMAGE: Final = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.PanicError, lmdb.InvalidError)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
BOOT_FILE = "boot_id"
# A process using the file marks it with a file of this name and its pid, removed when
# it closes the file: one left by a dead process means it died using it.
MARK_PREFIX = "open."
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# A walk of the whole file (in a child process) that takes longer is taken as a failure.
WALK_TIMEOUT_S: Final = 60.0
# Run by a child process: read every key and value of every database, or die trying.
WALK = """
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=int(sys.argv[2]), max_dbs=8, readonly=True)
with env.begin() as txn:
    names = [key for key, _ in txn.cursor()]
for name in names:
    db = env.open_db(name, create=False)
    with env.begin(db=db) as txn:
        for key, value in txn.cursor():
            pass
"""


def database_namespace(url: str) -> bytes:
    """Which database answers come from, as a key prefix: its backend, host, port and
    name (a SQLite file's path); not the user or password, which may change."""
    parsed = make_url(url)
    name = (
        f"{parsed.get_backend_name()}://{parsed.host or ''}:{parsed.port or ''}/{parsed.database}"
    )
    return hashlib.sha256(name.encode()).digest()[:NAMESPACE_BYTES]


def _micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def _cost(value_bytes: int, page: int) -> int:
    """Bytes of the file an answer may take: its entry and its index key, in B-tree pages
    that splits leave half full, and a value larger than half a page in whole pages of
    its own (LMDB's overflow pages)."""
    index = NODE_BYTES + _STAMP.size + KEY_BYTES
    if value_bytes > page // 2:
        pages = -(-(value_bytes + OVERFLOW_HEADER) // page) * page
        return pages + HALF_FULL * (NODE_BYTES + KEY_BYTES + PAGE_NUMBER_BYTES + index)
    return HALF_FULL * (NODE_BYTES + KEY_BYTES + value_bytes + index)


@dataclass(frozen=True, slots=True)
class SharedEntry:
    """An answer as the shared cache keeps it: its JSON, and when the school gave it."""

    payload: str
    fetched_at: datetime


class CacheFile:
    """The LMDB environment of one folder in this process, shared by its caches (LMDB
    allows one per file and process), and made again when LMDB finds it damaged."""

    def __init__(self, folder: Path, map_bytes: int) -> None:
        self.folder = folder
        self.map_bytes = map_bytes
        self.pid = os.getpid()
        self.users = 0
        self.mark = folder / f"{MARK_PREFIX}{self.pid}"
        with _folder_lock(folder):
            self._use(_open_or_remake(folder, map_bytes))
            self.mark.touch(mode=0o600)

    def _use(self, env: lmdb.Environment) -> None:
        self.env = env
        # Made when the file was opened (_open); opening them here needs no write.
        self.entries = env.open_db(DATABASES[0], create=False)
        self.by_age = env.open_db(DATABASES[1], create=False)
        self.meta = env.open_db(DATABASES[2], create=False)
        self.page = env.stat()["psize"]
        self.inode = _inode(self.folder)

    def remake(self) -> None:
        """After LMDB found the file damaged: a new file, unless another process made one
        since this one opened it (then that one is opened). Raises OSError, lmdb.Error."""
        with contextlib.suppress(lmdb.Error):
            self.env.close()
        with _folder_lock(self.folder):
            if _inode(self.folder) == self.inode:
                _remove_files(self.folder)
            self._use(_open(self.folder, self.map_bytes))

    def close(self) -> None:
        self.env.close()
        with contextlib.suppress(OSError):
            self.mark.unlink()


# The cache files this process opened, by real path.
_OPEN: dict[str, CacheFile] = {}


class SharedCache:
    """One worker's view of the host's shared cache, for the answers of one database."""

    def __init__(
        self,
        file: CacheFile,
        namespace: bytes,
        budget_bytes: int,
        evict_share: float,
        max_age_s: float,
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self._e = file
        self.namespace = namespace
        self.budget_bytes = budget_bytes
        self.evict_share = evict_share
        self.max_age_s = max_age_s
        self._release = release
        # True after an error trying again cannot mend: this process stops using it.
        self.broken = False

    @property
    def env(self) -> lmdb.Environment:
        return self._e.env

    def key(self, key: CacheKey) -> bytes:
        return self.namespace + bytes.fromhex(
            result_key(key.system, key.subject, key.kind, key.params)
        )

    def get(self, key: CacheKey, now: datetime) -> SharedEntry | None:
        """The answer to this question, unless older than max_age_s (None also when the
        cache cannot be read)."""
        k = self.key(key)
        raw = self._guarded("read", lambda: self._read(k))
        if raw is None or len(raw) < _STAMP.size:
            return None
        try:
            fetched_at = EPOCH + timedelta(microseconds=_STAMP.unpack_from(raw)[0])
            payload = raw[_STAMP.size :].decode()
        except (OverflowError, ValueError):
            return None  # not what put wrote: damaged
        if (now - fetched_at).total_seconds() > self.max_age_s:
            return None
        return SharedEntry(payload, fetched_at)

    def put(self, key: CacheKey, fetched_at: datetime, payload: str) -> None:
        """Keep an answer, unless one fetched later is there. Never raises."""
        value = _STAMP.pack(_micros(fetched_at)) + payload.encode()
        if _cost(len(value), self._e.page) > self.budget_bytes // MAX_ENTRY_SHARE:
            return
        k = self.key(key)
        self._guarded("write", lambda: self._write(k, value))

    def close(self) -> None:
        self._release()

    # Inside LMDB ---------------------------------------------------------------------------

    def _read(self, k: bytes) -> bytes | None:
        with self._e.env.begin(db=self._e.entries) as txn:
            return txn.get(k)

    def _write(self, k: bytes, value: bytes) -> None:
        try:
            self._put(k, value)
            return
        except lmdb.MapFullError:
            pass
        # Fuller than the budget says (pages emptied by deletions but not merged): half
        # the answers go; if even that does not make room, all of them. A MapFullError
        # of the last try leaves the cache to _guarded (this process stops using it).
        log.warning("the shared cache is full beyond its budget: the oldest answers go")
        try:
            self._shrink(0.5)
            self._put(k, value)
        except lmdb.MapFullError:
            self._clear()
            self._put(k, value)

    def _put(self, k: bytes, value: bytes) -> None:
        e = self._e
        with e.env.begin(write=True) as txn:
            old = txn.get(k, db=e.entries)
            total = self._total(txn)
            if old is not None:
                if old[: _STAMP.size] >= value[: _STAMP.size]:
                    return  # never older data over newer (equal: the same answer)
                txn.delete(old[: _STAMP.size] + k, db=e.by_age)
                total -= _cost(len(old), e.page)
            total += _cost(len(value), e.page)
            txn.put(k, value, db=e.entries)
            txn.put(value[: _STAMP.size] + k, b"", db=e.by_age)
            if total > self.budget_bytes:
                total = self._evict(txn, total, int(self.budget_bytes * (1 - self.evict_share)))
            txn.put(_TOTAL_KEY, _TOTAL.pack(max(0, total)), db=e.meta)

    def _shrink(self, keep: float) -> None:
        with self._e.env.begin(write=True) as txn:
            total = self._total(txn)
            total = self._evict(txn, total, int(total * keep))
            txn.put(_TOTAL_KEY, _TOTAL.pack(max(0, total)), db=self._e.meta)

    def _clear(self) -> None:
        e = self._e
        with e.env.begin(write=True) as txn:
            txn.drop(e.entries, delete=False)
            txn.drop(e.by_age, delete=False)
            txn.put(_TOTAL_KEY, _TOTAL.pack(0), db=e.meta)

    def _total(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(_TOTAL_KEY, db=self._e.meta)
        return int(_TOTAL.unpack(raw)[0]) if raw is not None and len(raw) == _TOTAL.size else 0

    def _evict(self, txn: lmdb.Transaction, total: int, down_to: int) -> int:
        """Remove the oldest answers (of any database) until `down_to` bytes are left;
        the bytes left."""
        e = self._e
        cursor = txn.cursor(db=e.by_age)
        while total > down_to and cursor.first():
            index = cursor.key()
            k = index[_STAMP.size :]
            value = txn.get(k, db=e.entries)
            # An index key whose answer was replaced since is only dropped.
            if value is not None and value[: _STAMP.size] == index[: _STAMP.size]:
                txn.delete(k, db=e.entries)
                total -= _cost(len(value), e.page)
            cursor.delete()
        if not cursor.first():
            total = 0  # nothing left: whatever was counted is gone
        return total

    def _guarded(self, what: str, work: Callable[[], R]) -> R | None:
        """`work` against LMDB; None (and this process stops using the cache) on an error
        that trying again cannot mend."""
        if self.broken:
            return None
        for _ in range(2):
            try:
                return work()
            except lmdb.MapResizedError:
                mended = self._mend(lambda: self._e.env.set_mapsize(0))  # another process grew it
            except lmdb.ReadersFullError:
                mended = self._mend(self._e.env.reader_check)  # slots of processes that died
            except DAMAGE as exc:
                log.warning("shared cache %s found damaged (%s): made again", self._e.folder, exc)
                mended = self._mend(self._e.remake)
            except lmdb.Error as exc:
                self._give_up(what, exc)
                return None
            if not mended:
                return None
        self._give_up(what, None)
        return None

    def _mend(self, repair: Callable[[], object]) -> bool:
        try:
            repair()
        except (OSError, lmdb.Error) as exc:
            self._give_up("repair", exc)
            return False
        return True

    def _give_up(self, what: str, exc: BaseException | None) -> None:
        if not self.broken:
            log.warning(
                "shared cache %s failed (%s); this worker answers from memory and the "
                "database until it is replaced",
                what,
                type(exc).__name__ if exc is not None else "again after a retry",
            )
        self.broken = True


# Opening ------------------------------------------------------------------------------------


def open_shared_cache(settings: CacheSettings, database_url: str) -> SharedCache | None:
    """This host's shared cache for the answers of this database, opened in this process
    (after the fork); None when it is off (`cache.shared_mb: 0`) or cannot be opened
    (logged). Never raises."""
    if not settings.enabled or settings.shared_mb <= 0:
        return None
    budget = int(settings.shared_mb * 1024 * 1024)
    try:
        file, release = open_file(Path(settings.shared_path), MAP_FACTOR * budget)
    except (OSError, lmdb.Error) as exc:
        log.warning(
            "shared cache %s cannot be used (%s: %s); each worker keeps its own memory only",
            settings.shared_path,
            type(exc).__name__,
            exc,
        )
        return None
    return SharedCache(
        file,
        database_namespace(database_url),
        budget,
        settings.shared_evict_share,
        settings.max_stale_s,
        release,
    )


def open_file(path: Path, map_bytes: int) -> tuple[CacheFile, Callable[[], None]]:
    """The cache file of this process at `path` (a folder, made mode 0700), and how to
    let it go. Raises OSError or lmdb.Error when even a new file cannot be made there."""
    real = os.path.realpath(path)
    file = _OPEN.get(real)
    if file is not None and file.pid != os.getpid():
        del _OPEN[real]  # a parent's, inherited over a fork: never used nor closed here
        file = None
    if file is None:
        Path(real).mkdir(mode=0o700, parents=True, exist_ok=True)
        file = CacheFile(Path(real), map_bytes)
        _OPEN[real] = file
    file.users += 1
    opened = file
    released = False

    def release() -> None:
        nonlocal released
        if released or _OPEN.get(real) is not opened:
            return
        released = True
        opened.users -= 1
        if opened.users == 0:
            del _OPEN[real]
            opened.close()

    return file, release


def boot_id() -> str | None:
    """This boot of the machine (Linux), or None where the system does not say."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """The folder locked against the other processes opening it (one remakes, others wait)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing lets go of the lock


def _open_or_remake(folder: Path, map_bytes: int) -> lmdb.Environment:
    """Open the file, or make it again when it is from another boot, unreadable, or fails
    a walk after a process died using it. Called with the folder locked."""
    boot = boot_id()
    boot_file = folder / BOOT_FILE
    try:
        written_in: str | None = boot_file.read_text(encoding="ascii").strip()
    except OSError:
        written_in = None
    if boot is not None and written_in != boot and (folder / "data.mdb").exists():
        log.info("shared cache %s was written before this boot: made again", folder)
        _remove_files(folder)
    died = _dead_users(folder)
    if died and (folder / "data.mdb").exists():
        # Read in another process first: a damaged page may kill the reader.
        if _walks(folder, map_bytes):
            log.info(
                "shared cache %s: %d process(es) died using it; read through, sound", folder, died
            )
        else:
            log.warning(
                "shared cache %s failed a walk after a process died using it: made again", folder
            )
            _remove_files(folder)
    try:
        env = _open(folder, map_bytes)
    except lmdb.Error as exc:
        log.warning("shared cache %s unreadable (%s): made again", folder, exc)
        _remove_files(folder)
        env = _open(folder, map_bytes)
    if boot is not None and written_in != boot:
        temporary = folder / f"{BOOT_FILE}.{os.getpid()}"
        temporary.write_text(boot + "\n", encoding="ascii")
        temporary.replace(boot_file)
    return env


def _open(folder: Path, map_bytes: int) -> lmdb.Environment:
    sync = boot_id() is None  # see the module docstring
    env = lmdb.open(
        str(folder),
        map_size=map_bytes,
        subdir=True,
        mode=0o600,
        max_dbs=len(DATABASES),
        sync=sync,
        metasync=sync,
        readahead=False,  # answers are read one by one, at random places
    )
    try:
        for name in DATABASES:
            env.open_db(name)
        env.reader_check()  # reader slots of processes that died
    except lmdb.Error:
        env.close()
        raise
    return env


def _walks(folder: Path, map_bytes: int) -> bool:
    """Whether a child process reads every page of the file without dying or failing."""
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed code, our own folder
            [sys.executable, "-I", "-c", WALK, str(folder), str(map_bytes)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=WALK_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _dead_users(folder: Path) -> int:
    """Forget the marks of processes that died with the file open; how many there were."""
    dead = 0
    for mark in folder.glob(f"{MARK_PREFIX}*"):
        pid = mark.name[len(MARK_PREFIX) :]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        dead += 1
        with contextlib.suppress(FileNotFoundError):
            mark.unlink()
    return dead


def _inode(folder: Path) -> int:
    try:
        return os.stat(folder / "data.mdb").st_ino
    except FileNotFoundError:
        return -1


def _remove_files(folder: Path) -> None:
    for name in ("data.mdb", "lock.mdb"):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
