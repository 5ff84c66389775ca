"""One run, one directory: the writer lock and the identity check that guard a run's output directory.

`claim_run_directory` is what train.py does before any work:
1. take the directory's lock (`.vlprompt.lock`, an flock that the kernel releases when the holder dies,
   so a crashed run never leaves it stuck): a second process stops at once, naming the holder's PID;
2. remove temporary files that killed writers left in it;
3. compare the run's identity with the one the directory records (`identity.json`): a directory that
   holds another run (or an unidentified one, from an older vlprompt or another codebase) is refused
   with the differing keys, before anything in it is touched;
4. record the identity.
"""
import contextlib
import fcntl
import json
import os
import time

from .errors import RunDirectoryError
from .fileio import remove_stale_temp_files, write_json_atomic
from .run_identity import IDENTITY_FILE, differences, read_identity

LOCK_FILE = ".vlprompt.lock"


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held until release() or process exit."""

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self._file = None

    def acquire(self, attempts=20, pause_s=0.05):
        os.makedirs(self.directory, exist_ok=True)
        f = open(self.path, "a+")
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
        return self

    def release(self):
        if self._file is not None:
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


def check_run_directory(directory, identity, what="--output-dir"):
    """Raise RunDirectoryError if `directory` holds a run of another identity. Returns the recorded
    identity (None for a new directory)."""
    recorded = read_identity(directory)
    if recorded is None:
        found = run_artifacts(directory)
        if found:
            raise RunDirectoryError(
                f"{directory} ({what}) holds a run without an identity record ({', '.join(found[:3])}; written by "
                f"vlprompt < 0.2 or another codebase), so it cannot be told apart from this run: write this run to "
                "another output directory, or move that folder away")
        return None
    if recorded.get("fingerprint") != identity["fingerprint"]:
        diff = differences(recorded, identity) or ["(no key differs; the identity format changed)"]
        raise RunDirectoryError(
            f"{directory} ({what}) holds another run: " + "; ".join(diff) + ". Nothing was changed there. The "
            "scripts put each variant (KEY VALUE options) in a directory of its own; with train.py choose another "
            "--output-dir, or move that folder away to redo the run")
    return recorded


def claim_run_directory(directory, identity, what="--output-dir"):
    """Lock `directory`, clean up after killed writers, check and record the identity. Returns the lock
    (hold it for the whole run) and whether the directory already held this run."""
    lock = RunLock(directory).acquire()
    try:
        remove_stale_temp_files(directory, recursive=True)
        recorded = check_run_directory(directory, identity, what)
        if recorded is None:
            write_json_atomic(identity, os.path.join(directory, IDENTITY_FILE))
    except BaseException:
        lock.release()
        raise
    return lock, recorded is not None
