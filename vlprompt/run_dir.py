"""One run, one directory: the writer lock and the identity check that guard a run's output directory.

`claim_run_directory` is what train.py does before any work:
1. take the directory's lock (`.vlprompt.lock`, an flock that the kernel releases when the holder dies,
   so a crashed run never leaves it stuck): a second process stops at once, naming the holder's PID;
2. remove temporary files that killed writers left in it;
3. compare the run's identity with the one the directory records (`identity.json`, an older format
   upgraded): a directory that holds another run's work (or unidentified work, from another codebase) is
   refused with the differing keys, before anything in it is touched; one where another identity was
   recorded but no work was done (a refused value, a crash before training) is taken over;
4. (record_identity, once the run is going to do work) record the identity.
"""
import contextlib
import fcntl
import json
import os
import time

from .errors import RunDirectoryError
from .fileio import remove_stale_temp_files, write_json_atomic
from .run_identity import IDENTITY_FILE, IDENTITY_FORMAT, differences, read_identity, upgrade

LOCK_FILE = ".vlprompt.lock"


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


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held until release() or process exit (and never
    by a forked child: _close_inherited_locks)."""

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self._file = None

    def acquire(self, attempts=20, pause_s=0.05):
        check_output_dir(self.directory)
        try:
            os.makedirs(self.directory, exist_ok=True)
            f = open(self.path, "a+")
        except OSError as e:
            raise RunDirectoryError(f"Cannot use {os.path.abspath(self.directory)} as a run directory: "
                                    f"{e.strerror or e}") from None
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
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunDirectoryError(
                f"{os.path.abspath(self.directory)} is in use by another run (PID {holder}): wait for it to "
                "finish, or write this run to another output directory") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        _HELD.add(f.fileno())
        return self

    def release(self):
        if self._file is not None:
            _HELD.discard(self._file.fileno())
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
