"""One run, one directory: the writer lock and the identity check that guard a run's output directory.

`claim_run_directory` is what train.py does before any work:
1. take the directory's lock (`RunLock`): a second process stops at once, naming the holder's PID and host;
2. remove temporary files that killed writers left in it;
3. compare the run's identity with the one the directory records (`identity.json`, an older format
   upgraded): a directory that holds another run's work (or unidentified work, from another codebase) is
   refused with the differing keys, before anything in it is touched; one where another identity was
   recorded but no work was done (a refused value, a crash before training) is taken over;
4. (record_identity, once the run is going to do work) record the identity.

The lock. By default an flock on `.vlprompt.lock`, which the kernel releases when its holder dies, so a
crashed run never leaves it stuck. The file records the holder's PID and host while it is held (and is
emptied on release), and the holder touches it every HEARTBEAT_S seconds: where flock is only node-local
(Lustre mounted with `localflock`), a lock held on another node is still seen from its record
(`lock_holder`: "running on node7"), and a record whose heartbeat stopped is known to be dead.

A file system without working flock (flock fails with ENOLCK, EOPNOTSUPP...) stops a run with one line
that names the way out: `VLPROMPT_LOCK=file` locks with an exclusively created `.vlprompt.owner` instead
(PID and host in it, the same heartbeat). A crashed holder leaves that file behind; it is stale, and taken
over, when its PID is gone (same host) or its heartbeat is older than STALE_AFTER_S (another host).
"""
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import socket
import threading
import time

from .errors import RunDirectoryError
from .fileio import remove_stale_temp_files, write_json_atomic
from .run_identity import IDENTITY_FILE, IDENTITY_FORMAT, differences, read_identity, upgrade

LOCK_FILE = ".vlprompt.lock"
OWNER_FILE = ".vlprompt.owner"      # the lock of VLPROMPT_LOCK=file
LOCK_ENV = "VLPROMPT_LOCK"          # "flock" (the default) or "file"
LOCK_MODES = ("flock", "file")
HEARTBEAT_S = 60                    # how often a holder touches its lock file
STALE_AFTER_S = 600                 # a lock record of another host untouched this long is a dead holder's
# flock's errors on a file system that does not support it (NFS without lockd, Lustre mounted noflock, FUSE)
FLOCK_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


class RunInUse(RunDirectoryError):
    """The run directory is locked by another live process (`holder`, a LockHolder)."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


# The lock files this process holds open. A forked child (a data-loader worker) inherits the descriptor, and
# an flock lasts while any descriptor of it is open: the lock would outlive a killed run by as long as its
# orphaned workers take to notice. Children close their copies at once (os.register_at_fork), so the lock
# dies with the run.
_HELD = set()


def _close_inherited_locks():
    """In a forked child: point each inherited lock descriptor at /dev/null (dup2 drops the child's reference
    to the locked file; the descriptor number stays valid for the file object that still wraps it)."""
    if not _HELD:
        return
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            for fd in list(_HELD):
                with contextlib.suppress(OSError):
                    os.dup2(null, fd)
        finally:
            os.close(null)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


# Never a run directory: the file system's own folders (a typo such as --output-dir / must not make a run walk
# /proc or write its lock into /).
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys",
                  "/usr", "/var")
SYSTEM_TREES = ("/proc", "/sys", "/dev")


def check_output_dir(directory):
    """Refuse a system folder, or a path that exists and is not a folder, as a run directory (one line)."""
    real = os.path.realpath(directory)
    if real in SYSTEM_FOLDERS or any(real.startswith(tree + os.sep) for tree in SYSTEM_TREES):
        raise RunDirectoryError(f"{directory} is a system folder ({real}), not a run directory: choose a folder of "
                                "your own for --output-dir / OUTPUT")
    if os.path.exists(real) and not os.path.isdir(real):
        raise RunDirectoryError(f"{directory} is a file, not a folder: choose another --output-dir / OUTPUT")


# ------------------------------------------------------------------------------------ who holds it
def this_host():
    return socket.gethostname() or "localhost"


@dataclasses.dataclass(frozen=True)
class LockHolder:
    """The process a lock record names."""
    pid: str
    host: str = None            # None: a record of an older version (PID only)

    @classmethod
    def parse(cls, text):
        """A lock record ("<pid> <host>", or "<pid>"), None when empty."""
        parts = (text or "").split()
        if not parts:
            return None
        return cls(parts[0], parts[1] if len(parts) > 1 else None)

    @classmethod
    def me(cls):
        return cls(str(os.getpid()), this_host())

    def record(self):
        return f"{self.pid} {self.host}\n"

    @property
    def on_this_host(self):
        return self.host is None or self.host == this_host()

    def is_alive_here(self):
        """On this host: whether its PID is a live process (None: it is another host's, unknown from here)."""
        if not self.on_this_host:
            return None
        if not self.pid.isdigit():
            return False
        try:
            os.kill(int(self.pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True

    def __str__(self):
        return f"PID {self.pid}" + (f" on {self.host}" if self.host else "")


def _read_record(path):
    try:
        with open(path) as f:
            return LockHolder.parse(f.read())
    except OSError:
        return None


def _heartbeat_age(path):
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None


def _is_stale(path, holder):
    """A lock record whose holder is known to be gone: its PID is dead (this host), or its heartbeat stopped
    more than STALE_AFTER_S ago (another host)."""
    alive = holder.is_alive_here() if holder is not None else False
    if alive is not None:
        return not alive
    age = _heartbeat_age(path)
    return age is None or age > STALE_AFTER_S


def lock_holder(directory):
    """The LockHolder of the live process that holds the run directory's lock, or None. Seen through the
    flock (a non-blocking shared flock of our own fails while it is held), or, where the flock is free here,
    through a record of another host with a live heartbeat (flock only node-local), or the owner file of
    VLPROMPT_LOCK=file. Never raises for a file system without flock."""
    path = os.path.join(directory, LOCK_FILE)
    try:
        f = open(path)
    except OSError:
        f = None
    if f is not None:
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                return LockHolder.parse(f.read()) or LockHolder("unknown")
            except OSError:
                pass  # no flock here: the owner file below tells
            else:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                f.seek(0)
                holder = LockHolder.parse(f.read())
                if holder is not None and not holder.on_this_host and not _is_stale(path, holder):
                    return holder
    owner = os.path.join(directory, OWNER_FILE)
    holder = _read_record(owner)
    if holder is not None and not _is_stale(owner, holder):
        return holder
    return None


def lock_mode():
    mode = os.environ.get(LOCK_ENV, "").strip() or "flock"
    if mode not in LOCK_MODES:
        raise RunDirectoryError(f"{LOCK_ENV}={mode!r}: use flock (the default) or file")
    return mode


# ---------------------------------------------------------------------------------------- the lock
class _Heartbeat:
    """Touches a lock file every HEARTBEAT_S seconds until stopped (a daemon thread)."""

    def __init__(self, path, every_s=HEARTBEAT_S):
        self.path, self.every_s, self._stop = path, every_s, threading.Event()
        self._thread = threading.Thread(target=self._beat, name="vlprompt-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def stop(self):
        self._stop.set()


class RunLock:
    """An exclusive, non-blocking lock on a run directory (module docstring), held until release() or process
    exit (and never by a forked child: _close_inherited_locks)."""

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self._file = None
        self._owner = None          # the owner file, under VLPROMPT_LOCK=file
        self._heartbeat = None

    def acquire(self, attempts=20, pause_s=0.05):
        check_output_dir(self.directory)
        mode = lock_mode()
        try:
            os.makedirs(self.directory, exist_ok=True)
            f = open(self.path, "a+")
        except OSError as e:
            raise RunDirectoryError(f"Cannot use {os.path.abspath(self.directory)} as a run directory: "
                                    f"{e.strerror or e}") from None
        if mode == "file":
            f.close()
            return self._acquire_owner_file(attempts, pause_s)
        try:
            # A status probe (vlprompt run --status) holds a shared lock for microseconds: try again briefly
            # before calling the directory busy. A run holds it for its whole duration.
            for attempt in range(attempts):
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == attempts - 1:
                        raise
                    time.sleep(pause_s)
        except BlockingIOError:
            f.seek(0)
            holder = LockHolder.parse(f.read()) or LockHolder("unknown")
            f.close()
            raise self._in_use(holder) from None
        except OSError as e:
            f.close()
            if e.errno not in FLOCK_UNSUPPORTED:
                raise
            raise RunDirectoryError(
                f"Cannot lock {os.path.abspath(self.directory)}: its file system does not support flock "
                f"({e.strerror or e}). Set {LOCK_ENV}=file to lock run directories with a file that records host "
                "and PID instead (README: Running a whole protocol)") from None
        f.seek(0)
        f.truncate()
        f.write(LockHolder.me().record())
        f.flush()
        self._file = f
        _HELD.add(f.fileno())
        self._heartbeat = _Heartbeat(self.path)
        return self

    def _acquire_owner_file(self, attempts, pause_s):
        owner = os.path.join(self.directory, OWNER_FILE)
        attempt = 0
        while True:
            try:
                fd = os.open(owner, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = _read_record(owner)
                if holder is not None and _is_stale(owner, holder):
                    print(f"Note: {owner} names {holder}, which is gone: this run takes the lock over")
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(owner)
                    continue
                attempt += 1
                if attempt >= attempts:
                    raise self._in_use(holder or LockHolder("unknown"), owner) from None
                time.sleep(pause_s)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(LockHolder.me().record())
            self._owner = owner
            self._heartbeat = _Heartbeat(owner)
            return self

    def _in_use(self, holder, owner=None):
        where = os.path.abspath(self.directory)
        text = f"{where} is in use by another run ({holder}): wait for it to finish, or write this run to another " \
               "output directory"
        if owner and not holder.on_this_host:
            text += f" (if that run is no longer running, remove {owner})"
        return RunInUse(text, holder)

    def release(self):
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self._owner is not None:
            with contextlib.suppress(OSError):
                os.remove(self._owner)
            self._owner = None
        if self._file is not None:
            _HELD.discard(self._file.fileno())
            with contextlib.suppress(OSError):
                self._file.truncate(0)  # no record of a holder once it is released
                self._file.flush()
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def recorded_fingerprint(path):
    """The identity fingerprint an identity.json or result.json records, or None."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("identity"), dict):  # result.json
        data = data["identity"]
    return data.get("fingerprint")


def is_finished(directory):
    """The run in `directory` finished as what it is: result.json records identity.json's fingerprint."""
    fingerprint = recorded_fingerprint(os.path.join(directory, IDENTITY_FILE))
    return fingerprint is not None and recorded_fingerprint(os.path.join(directory, "result.json")) == fingerprint


def run_artifacts(directory):
    """What in `directory` shows that a run wrote it: result.json, checkpoints, checkpoint pointers."""
    found = []
    if not os.path.isdir(directory):
        return found
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name == "result.json":
            found.append(name)
        elif os.path.isdir(path):
            found += [f"{name}/{f}" for f in sorted(os.listdir(path)) if f == "checkpoint" or f.startswith("model")]
    return found


def recorded_identity(directory, scope=None):
    """The identity `directory` records, format 1 upgraded to the current format (with its result.json's
    precision and device where the run finished), or None."""
    recorded = read_identity(directory)
    if recorded is None or recorded.get("format", 1) >= IDENTITY_FORMAT:
        return recorded
    result = None
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(directory, "result.json")) as f:
            result = json.load(f)
    return upgrade(recorded, scope, result if isinstance(result, dict) else None)


def check_run_directory(directory, identity, what="--output-dir", scope=None, way_out=None):
    """Raise RunDirectoryError if `directory` holds a run of another identity. Returns the recorded
    identity (None for a new directory, or one where a run of another identity did no work: no checkpoint,
    no result, so a corrected command may take it over). way_out: how to keep this run apart, for the
    message (the scripts name VARIANT= and OUTPUT=)."""
    recorded = recorded_identity(directory, scope)
    found = run_artifacts(directory)
    if recorded is None:
        if found:
            raise RunDirectoryError(
                f"{directory} ({what}) holds a run without an identity record ({', '.join(found[:3])}; written by "
                f"another codebase's train.py or before runs recorded their identity), so it cannot be told apart "
                f"from this run: {way_out or 'write this run to another output directory'}, or move that folder away")
        return None
    if recorded.get("fingerprint") != identity["fingerprint"]:
        if not found:
            print(f"Note: {directory} recorded another run's identity but holds no work of it (no checkpoint, no "
                  "result): this run takes it over")
            return None
        diff = differences(recorded, identity) or ["(no key differs; the identity format changed)"]
        raise RunDirectoryError(
            f"{directory} ({what}) holds another run: " + "; ".join(diff) + ". Nothing was changed there. "
            + (way_out or "With train.py choose another --output-dir") + ", or move that folder away to redo the run")
    return recorded


def claim_run_directory(directory, identity, what="--output-dir", scope=None, way_out=None):
    """Lock `directory`, clean up after killed writers, check the identity. Returns the lock (hold it for
    the whole run) and the identity the directory already recorded for this run (None for a new run). The
    caller records the identity (record_identity) once it is going to do work: a finished run that is
    skipped is left as it is."""
    lock = RunLock(directory).acquire()
    try:
        remove_stale_temp_files(directory, subfolders=True)
        recorded = check_run_directory(directory, identity, what, scope, way_out)
    except BaseException:
        lock.release()
        raise
    return lock, recorded


def record_identity(directory, identity, recorded):
    """Write identity.json unless it already records this identity in the current format."""
    if recorded is None or "original_fingerprint" in recorded:  # new, taken over, or an older format's
        write_json_atomic(identity, os.path.join(directory, IDENTITY_FILE))
