"""The run directory's lock (vlprompt/run_dir.py): it records host and PID, a run held on another host is
seen from its record, and a file system without flock gives one line and a documented way on
(VLPROMPT_LOCK=file), which keeps one writer per directory and takes over the file of a holder that is gone.

A file system without flock is simulated by making fcntl.flock fail as NFS without lockd (ENOLCK) and a
Lustre mount with noflock (EOPNOTSUPP) make it fail."""
import errno
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import REPO_ROOT, fast_opts
from vlprompt import run_dir
from vlprompt.errors import RunDirectoryError
from vlprompt.launchers.base import DONE, FAILED, RUNNING, Run, run_state
from vlprompt.run_dir import LOCK_FILE, OWNER_FILE, LockHolder, RunInUse, RunLock, lock_holder

HOST = socket.gethostname()


def no_flock(code):
    def flock(fd, operation):
        raise OSError(code, os.strerror(code))
    return flock


def test_the_lock_records_host_and_pid_while_held_and_nothing_after(tmp_path):
    with RunLock(str(tmp_path)):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()} {HOST}\n"
        assert lock_holder(str(tmp_path)) == LockHolder(str(os.getpid()), HOST)
        with pytest.raises(RunInUse) as e:
            RunLock(str(tmp_path)).acquire(attempts=1)
        assert e.value.holder == LockHolder(str(os.getpid()), HOST)
        assert str(e.value) == f"{tmp_path} is in use by another run (PID {os.getpid()} on {HOST}): wait for it to " \
                               "finish, or write this run to another output directory"
    assert (tmp_path / LOCK_FILE).read_text() == "" and lock_holder(str(tmp_path)) is None


def test_a_run_held_on_another_node_is_running_there_until_its_heartbeat_stops(tmp_path):
    """Where flock is node-local (Lustre localflock), the lock is free from here but the record of a holder on
    another node, touched by its heartbeat, says it runs there."""
    run = Run("r", [], str(tmp_path / "r"))
    os.makedirs(run.output_dir)
    (tmp_path / "r" / "identity.json").write_text('{"fingerprint": "a"}')
    lock = tmp_path / "r" / LOCK_FILE
    lock.write_text("4242 node7\n")
    state = run_state(run)
    assert (state.state, state.holder) == (RUNNING, LockHolder("4242", "node7"))
    assert state.describe() == "running  r  (PID 4242 on node7)"
    old = time.time() - run_dir.STALE_AFTER_S - 60
    os.utime(lock, (old, old))  # no heartbeat for longer than STALE_AFTER_S: its holder is gone
    assert run_state(run).state == FAILED
    lock.write_text(f"{os.getpid() + 10 ** 6} {HOST}\n")  # a record of this host whose process is gone (killed)
    assert run_state(run).state == FAILED


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_file_system_without_flock_gives_one_line_that_names_the_way_on(tmp_path, monkeypatch, code):
    monkeypatch.setattr(run_dir.fcntl, "flock", no_flock(code))
    monkeypatch.delenv("VLPROMPT_LOCK", raising=False)
    with pytest.raises(RunDirectoryError) as e:
        RunLock(str(tmp_path)).acquire()
    assert str(e.value) == (f"Cannot lock {tmp_path}: its file system does not support flock ({os.strerror(code)}). "
                            "Set VLPROMPT_LOCK=file to lock run directories with a file that records host and PID "
                            "instead (README: Running a whole protocol)")
    assert lock_holder(str(tmp_path)) is None  # a status probe does not fail there


def test_the_lock_file_keeps_one_writer_and_takes_over_a_dead_holders_file(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dir.fcntl, "flock", no_flock(errno.ENOLCK))
    monkeypatch.setenv("VLPROMPT_LOCK", "file")
    owner = tmp_path / OWNER_FILE
    lock = RunLock(str(tmp_path)).acquire()
    assert owner.read_text() == f"{os.getpid()} {HOST}\n"
    assert lock_holder(str(tmp_path)) == LockHolder(str(os.getpid()), HOST)
    with pytest.raises(RunInUse, match=rf"in use by another run \(PID {os.getpid()} on {HOST}\)"):
        RunLock(str(tmp_path)).acquire(attempts=2, pause_s=0)
    lock.release()
    assert not owner.exists() and lock_holder(str(tmp_path)) is None

    # A holder killed on this host: its PID is gone, so its file is stale and taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    owner.write_text(f"{dead} {HOST}\n")
    assert lock_holder(str(tmp_path)) is None
    RunLock(str(tmp_path)).acquire(attempts=1).release()
    # Another host's holder: alive while its heartbeat is fresh (the message says how to clear it), stale after.
    owner.write_text("4242 node7\n")
    with pytest.raises(RunInUse) as e:
        RunLock(str(tmp_path)).acquire(attempts=1)
    assert str(e.value).endswith(f"(PID 4242 on node7): wait for it to finish, or write this run to another output "
                                 f"directory (if that run is no longer running, remove {owner})")
    old = time.time() - run_dir.STALE_AFTER_S - 60
    os.utime(owner, (old, old))
    RunLock(str(tmp_path)).acquire(attempts=1).release()
    monkeypatch.setenv("VLPROMPT_LOCK", "nfs")
    with pytest.raises(RunDirectoryError, match="^VLPROMPT_LOCK='nfs': use flock \\(the default\\) or file$"):
        RunLock(str(tmp_path)).acquire()


def test_a_run_completes_with_the_lock_file_where_flock_fails(tmp_path, caltech_root, tiny_clip_path, monkeypatch,
                                                             capsys):
    from vlprompt.entry import main

    monkeypatch.setattr(run_dir.fcntl, "flock", no_flock(errno.EOPNOTSUPP))
    out = tmp_path / "run"
    argv = ["--root", caltech_root, "--seed", "1", "--trainer", "CoOp",
            "--config-file", os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml"),
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
            "--output-dir", str(out), *fast_opts(tiny_clip_path, epochs=1), "DATASET.NUM_SHOTS", "1"]
    with pytest.raises(RunDirectoryError, match="Set VLPROMPT_LOCK=file"):
        main(argv)
    assert not (out / "identity.json").exists()  # refused before any work
    monkeypatch.setenv("VLPROMPT_LOCK", "file")
    result = main(argv)
    assert result.metrics["accuracy"] >= 0 and run_state(Run("r", argv, str(out))).state == DONE
    assert not (out / OWNER_FILE).exists()
