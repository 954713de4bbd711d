"""One writer per workspace: ``<workspace>/state/lock.json`` names the process that holds it.

Local filesystems: the lock file is created with ``O_CREAT | O_EXCL`` (only one creator can win),
its JSON written and fsynced. A lock left by a process that is gone (killed with ``kill -9``,
crashed, or its machine rebooted) is taken over by the next taker on the same host: the holder
is dead when ``os.kill(pid, 0)`` finds no such process, when the process is a zombie, or when a
process with that pid exists but started at another moment than the one recorded (the pid was
reused), or when the machine booted since. A lock file that cannot be parsed (empty, half-written,
garbage, not even a regular file) is stale once older than :data:`STALE_UNREADABLE_AFTER` seconds;
younger, it is a taker between its create and its write, so the workspace counts as busy until then.
Its age is the larger of its mtime's age and how long this taker has seen it unchanged: an mtime
in the future (clock skew, NFS) counts as age 0, so such a file is taken over after that many
seconds of watching, never waited on forever. Taking over an unreadable file, or watching one for
more than :data:`_UNREADABLE_NOTICE` seconds, is said in one line (a warning on this module's
logger).

Taking, taking over and releasing run under ``flock`` on ``state/lock.guard`` (a permanent empty
file; the kernel drops the flock when its holder dies, so it never goes stale). Under it, the
stale file judged is the file removed, and only one taker can replace it. Where ``flock`` is
refused (some network or FUSE filesystems), the stale file is renamed to a unique name and the
renamed file checked to be the one judged (same inode, mtime and bytes; put back otherwise)
before competing again with ``O_EXCL``: exclusive for two racing takers, best effort beyond.

A holder on another host cannot be checked: its lock counts as held until it is released or
removed by hand.

Object storage (any fsspec filesystem that is not local: ``s3://``, ``gs://``, ``memory://``)
has no create-if-absent here, so the lock there is advisory, best effort: read the lock object;
if a live holder is named (or one on another host), the workspace is busy; otherwise write ours,
wait :data:`REMOTE_SETTLE` seconds, and read it back: we hold it only if our token is still
there. Two takers can still both win: when one finds no lock before the other's write lands and
writes its own only after the other's read-back (a stall longer than the settle time between
its read and its write). Run one writer per workspace prefix.

The lock is re-entrant within a process: a nested ``workspace_lock`` on the same workspace (for
example ``curate run`` holding it while each stage takes it again) succeeds at once; only the
outermost exit removes the file. It is a lock between processes, not between threads: every
thread of the holding process holds it. A child process (fork or spawn) does not inherit it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # not POSIX: no guard, rename-and-check takeover only
    fcntl = None

from curate.errors import CurateError
from curate.io.atomic import fsync_dir as _fsync_dir
from curate.io.fs import Location

LOCK_PATH = ("state", "lock.json")
# Beside the lock file, never removed: flock on it serializes taking, taking over and releasing.
GUARD_NAME = "lock.guard"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# An unparseable lock file younger than this is a taker between its create and its write.
STALE_UNREADABLE_AFTER = 5.0
# Object storage: seconds between writing our lock object and the read-back that decides.
REMOTE_SETTLE = 0.2
# How soon to look again at a lock file that is being written.
_UNREADABLE_RETRY = 0.02
# Seconds of waiting on an unreadable lock file after which the wait is announced.
_UNREADABLE_NOTICE = 1.0
# A lock file holds well under 1 KiB; no more than this is read of one (it may be garbage).
_MAX_LOCK_BYTES = 1 << 16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) a workspace lock. ``started`` is seconds since the epoch."""

    pid: int
    host: str
    command: str
    started: float
    token: str


class WorkspaceBusy(CurateError):
    """Another process holds the workspace lock. ``holder`` names it when its lock file is readable."""

    def __init__(self, message: str, holder: LockInfo | None = None, workspace: str = "") -> None:
        super().__init__(message)
        self.holder = holder
        self.workspace = workspace

    def __reduce__(self):
        return (type(self), (str(self), self.holder, self.workspace))


# --- the process's own holdings (re-entrancy) -------------------------------------------------

@dataclass
class _Held:
    info: LockInfo
    depth: int
    owner_pid: int


_guard = threading.Lock()
_held: dict[str, _Held] = {}


def _reset_after_fork() -> None:
    # A forked child holds nothing (and must not inherit a _guard some other thread had taken).
    global _guard
    _guard = threading.Lock()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _key(root: Location) -> str:
    return os.path.realpath(root.path) if root.is_local else root.uri


# --- process identity -------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        rest = raw[raw.rindex(")") + 2:].split()
        return rest[0], int(rest[19])  # fields 3 (state) and 22 (starttime)
    except (OSError, ValueError, IndexError):
        return None


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class _Record:
    info: LockInfo
    proc_start: int | None
    boot_id: str | None

    def to_bytes(self) -> bytes:
        i = self.info
        obj = {"pid": i.pid, "host": i.host, "command": i.command, "started": i.started,
               "token": i.token, "proc_start": self.proc_start, "boot_id": self.boot_id}
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _new_record(command: str, token: str) -> _Record:
    pid = os.getpid()
    stat = _proc_stat(pid)
    info = LockInfo(pid=pid, host=socket.gethostname(), command=command, started=time.time(), token=token)
    return _Record(info, stat[1] if stat else None, _boot_id())


def _parse(data: bytes) -> _Record | None:
    """The record in a lock file, or None when it is not a whole, valid one."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    pid, host, command, started, token = (obj.get(k) for k in ("pid", "host", "command", "started", "token"))
    if (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(host, str)
            or not isinstance(command, str) or not isinstance(started, (int, float))
            or isinstance(started, bool) or not isinstance(token, str) or not token):
        return None
    proc_start = obj.get("proc_start")
    boot_id = obj.get("boot_id")
    return _Record(LockInfo(pid, host, command, float(started), token),
                   proc_start if isinstance(proc_start, int) and not isinstance(proc_start, bool) else None,
                   boot_id if isinstance(boot_id, str) else None)


def _holder_alive(rec: _Record, key: str) -> bool:
    """False only when the holder is surely gone; a holder on another host counts as alive."""
    info = rec.info
    if info.host != socket.gethostname():
        return True
    here = _boot_id()
    if rec.boot_id and here and rec.boot_id != here:
        return False  # written before this machine last booted
    if os.name == "nt":
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT there
    if info.pid == os.getpid():
        # Our own pid: it is ours only if this process holds it (else a leftover of ours, or the
        # lock of an earlier process that had our pid). Called with _guard held.
        held = _held.get(key)
        return held is not None and held.info.token == info.token
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return True
    stat = _proc_stat(info.pid)
    if stat is not None:
        state, start = stat
        if state in ("Z", "X"):
            return False  # killed, not yet reaped
        if rec.proc_start is not None and start != rec.proc_start:
            return False  # the pid was reused by a later process
    return True


# --- messages ---------------------------------------------------------------------------------

def _describe(info: LockInfo) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.started))
    return f"pid {info.pid} on {info.host} ({info.command}, since {since})"


def _elsewhere_hint(root: Location, info: LockInfo) -> str:
    if info.host == socket.gethostname():
        return ""
    return (f" (that host is not this one, so curate cannot tell whether the process still runs; "
            f"if it does not, delete {root.join(*LOCK_PATH).uri})")


def _busy(root: Location, info: LockInfo) -> WorkspaceBusy:
    return WorkspaceBusy(f"workspace {root.uri} is in use by {_describe(info)}; wait for it, or rerun "
                         f"with --wait{_elsewhere_hint(root, info)}", info, root.uri)


def _gave_up(root: Location, info: LockInfo | None, timeout: float) -> WorkspaceBusy:
    who = _describe(info) if info is not None else "another process (its lock file is being written)"
    hint = _elsewhere_hint(root, info) if info is not None else ""
    return WorkspaceBusy(f"workspace {root.uri} is still in use by {who}; gave up after {timeout:g} s{hint}",
                         info, root.uri)


# --- one attempt, local -----------------------------------------------------------------------

_WON, _BUSY, _AGAIN, _SOON = "won", "busy", "again", "soon"


def _snapshot(path: str) -> tuple[int, int, bytes] | None:
    """(inode, mtime_ns, bytes) of one open of ``path``; None when it does not exist. Opened
    non-blocking and read only if a regular file (a FIFO put there gives no bytes, never a hang),
    at most :data:`_MAX_LOCK_BYTES` of it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        data = fh.read(_MAX_LOCK_BYTES) if stat.S_ISREG(st.st_mode) else b""
        return st.st_ino, st.st_mtime_ns, data or b""


def _unreadable_age(snap: tuple[int, int, bytes], seen: dict) -> float:
    """Seconds an unparseable lock file has been there: its mtime's age (0 for an mtime in the
    future) or how long this taker has seen this very file unchanged (``seen``), the larger."""
    first = seen.setdefault(snap, time.monotonic())
    return max(0.0, time.time() - snap[1] / 1e9, time.monotonic() - first)


def _remove_if_same(path: str, snap: tuple[int, int, bytes], tag: str) -> None:
    """Remove ``path`` only if it is still the file ``snap`` was taken of.

    Rename it to a unique name first (atomic: whatever is at ``path`` moves), then compare.
    If what moved is another file (a taker replaced the one we judged in between), put it back
    with ``os.link``, which fails rather than overwrite a lock created meanwhile."""
    moved = f"{path}.{tag}-{uuid.uuid4().hex[:12]}"
    try:
        os.rename(path, moved)
    except FileNotFoundError:
        return
    try:
        if _snapshot(moved) != snap:
            try:
                os.link(moved, path)
            except FileExistsError:
                pass  # a third taker already created a lock: leave theirs
            except OSError:  # no hard links on this filesystem
                if not os.path.exists(path):
                    os.rename(moved, path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(moved)
        _fsync_dir(os.path.dirname(path))


@contextmanager
def _guarded(state_dir: str) -> Iterator[bool]:
    """Hold ``flock`` on the permanent file ``state/lock.guard`` (True) for a short critical section.

    The kernel drops it when its holder dies, so it never goes stale. Where flock is missing or
    refused (some network or FUSE filesystems) yield False: the caller then falls back to
    rename-and-check takeover, which a third concurrent taker can still defeat."""
    fd = None
    locked = False
    if fcntl is not None:
        try:
            fd = os.open(os.path.join(state_dir, GUARD_NAME), os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:
            pass
    try:
        yield locked
    finally:
        if fd is not None:
            os.close(fd)  # releases the flock


def _create(path: str, rec: _Record) -> bool:
    """Create the lock file holding ``rec`` if there is none (O_EXCL); False if there is one."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _CLOEXEC, 0o644)
    except FileExistsError:
        return False
    try:
        data = rec.to_bytes()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    _fsync_dir(os.path.dirname(path))
    return True


def _try_local(path: str, rec: _Record, key: str, seen: dict | None = None) -> tuple[str, LockInfo | None]:
    """One attempt: create the lock file, or find who holds it, or clear a stale one (``seen``: when
    this taker first saw each unparseable lock file, see :func:`_unreadable_age`)."""
    state_dir = os.path.dirname(path)
    os.makedirs(state_dir, exist_ok=True)
    with _guarded(state_dir) as guarded:
        if _create(path, rec):
            return _WON, rec.info
        snap = _snapshot(path)
        if snap is None:
            return _AGAIN, None  # released meanwhile
        found = _parse(snap[2])
        if found is None:
            age = _unreadable_age(snap, {} if seen is None else seen)
            if age < STALE_UNREADABLE_AFTER:
                return _SOON, None  # a taker between its create and its write (or just killed there)
            log.warning("lock file %s is unreadable (empty or garbled) and no curate process has written it "
                        "for %.0f s: taking it over", path, age)
        elif _holder_alive(found, key):
            return _BUSY, found.info
        if not guarded:
            _remove_if_same(path, snap, "stale")
            return _AGAIN, None
        # Under the guard no other taker can create, judge or remove meanwhile, and the stale
        # file's owner is gone: it is still the file we judged.
        os.unlink(path)
        return (_WON, rec.info) if _create(path, rec) else (_AGAIN, None)


def _release_local(path: str, token: str) -> None:
    state_dir = os.path.dirname(path)
    with _guarded(state_dir) as guarded:
        snap = _snapshot(path)
        if snap is None:
            return
        found = _parse(snap[2])
        if found is None or found.info.token != token:
            log.warning("lock file %s is no longer ours; left in place", path)
            return
        if guarded:
            os.unlink(path)
            _fsync_dir(state_dir)
        else:
            _remove_if_same(path, snap, "released")


# --- one attempt, object storage --------------------------------------------------------------

def _read_remote(loc: Location) -> bytes | None:
    try:
        return loc.fs.cat_file(loc.path)
    except FileNotFoundError:
        return None


def _try_remote(loc: Location, rec: _Record, key: str) -> tuple[str, LockInfo | None]:
    data = _read_remote(loc)
    if data is not None:
        found = _parse(data)  # object writes are whole: unparseable is garbage, not half-written
        if found is not None and _holder_alive(found, key):
            return _BUSY, found.info
    loc.fs.makedirs(loc.path.rpartition("/")[0] or "/", exist_ok=True)
    loc.fs.pipe_file(loc.path, rec.to_bytes())
    if REMOTE_SETTLE > 0:
        time.sleep(REMOTE_SETTLE)  # a competing write made in this window replaces ours
    back = _read_remote(loc)
    found = _parse(back) if back is not None else None
    if found is None:
        return _AGAIN, None
    if found.info.token == rec.info.token:
        return _WON, rec.info
    return _BUSY, found.info


def _release_remote(loc: Location, token: str) -> None:
    data = _read_remote(loc)
    found = _parse(data) if data is not None else None
    if found is None or found.info.token != token:
        log.warning("lock file %s is no longer ours; left in place", loc.uri)
        return
    with suppress(FileNotFoundError):
        loc.fs.rm_file(loc.path)


# --- the context manager ----------------------------------------------------------------------

def _enter(root: Location, command: str, wait: bool, poll: float, timeout: float | None,
           on_wait: Callable[[LockInfo], None] | None) -> tuple[str, LockInfo]:
    key = _key(root)
    lock = root.join(*LOCK_PATH)
    token = uuid.uuid4().hex
    began = time.monotonic()
    holder: LockInfo | None = None
    told = False
    seen: dict = {}  # unparseable lock files -> when first seen
    soon_since: float | None = None
    noticed = False
    while True:
        with _guard:
            held = _held.get(key)
            if held is not None and held.owner_pid == os.getpid():
                held.depth += 1
                return key, held.info
            rec = _new_record(command, token)
            if root.is_local:
                outcome, info = _try_local(lock.path, rec, key, seen)
            else:
                outcome, info = _try_remote(lock, rec, key)
            if outcome == _WON:
                _held[key] = _Held(rec.info, 1, os.getpid())
                return key, rec.info
        if outcome == _AGAIN:
            continue
        if outcome == _SOON:
            delay = _UNREADABLE_RETRY
            soon_since = time.monotonic() if soon_since is None else soon_since
            if not noticed and time.monotonic() - soon_since >= _UNREADABLE_NOTICE:
                noticed = True
                log.warning("lock file %s is unreadable (empty or garbled): waiting up to %g s for a curate "
                            "process to finish writing it, then taking it over", lock.uri, STALE_UNREADABLE_AFTER)
        else:
            holder = info
            if not wait:
                raise _busy(root, info)
            if on_wait is not None and not told:
                told = True
                on_wait(info)
            delay = poll
        if wait and timeout is not None:
            left = timeout - (time.monotonic() - began)
            if left <= 0:
                raise _gave_up(root, holder, timeout)
            delay = min(delay, left)
        time.sleep(max(delay, 0.0))


def _exit(root: Location, key: str) -> None:
    with _guard:
        held = _held.get(key)
        if held is None or held.owner_pid != os.getpid():
            return
        held.depth -= 1
        if held.depth > 0:
            return
        del _held[key]
        lock = root.join(*LOCK_PATH)
        try:
            if root.is_local:
                _release_local(lock.path, held.info.token)
            else:
                _release_remote(lock, held.info.token)
        except OSError as exc:
            log.warning("could not remove lock file %s: %s", lock.uri, exc)


@contextmanager
def workspace_lock(root: Location, command: str, *, wait: bool = False, poll: float = 0.5,
                   timeout: float | None = None,
                   on_wait: Callable[[LockInfo], None] | None = None) -> Iterator[LockInfo]:
    """Hold the lock of workspace ``root`` for the ``with`` block; yield the holder's :class:`LockInfo`.

    ``command`` is what the message of a later taker shows, e.g. ``"curate ingest"``. A live holder
    raises :class:`WorkspaceBusy` at once, or with ``wait=True`` is polled every ``poll`` seconds
    until it releases (``on_wait(holder)`` is called once, when waiting starts) or ``timeout``
    seconds pass (then :class:`WorkspaceBusy`). Nested calls on the same workspace in the same
    process succeed at once and yield the outermost holder's info.
    """
    key, info = _enter(root, command, wait, poll, timeout, on_wait)
    try:
        yield info
    finally:
        _exit(root, key)
