"""A local launcher's worker: one long-lived process that runs the runs it is given, one after the other.

It is started with multiprocessing's "spawn" (no fork after CUDA is initialised), sets its device, imports
torch and the codebase's trainers/ and datasets/ once, then takes runs from its inbox until told to stop
(None). Each run goes through `run_in_process`, its console output into `<log_dir>/<run>.log`; between runs
the worker puts back what a run may change of the process (ProcessState). For every run it sends back

    ("end", index, (run name, RunFailure or None), seconds)

and, after a failure that was not a user error (a bug, a CUDA error, out of memory: its process may be
broken), it exits: the launcher starts a fresh worker for the next run.

A worker never outlives its launcher, whatever kills the launcher: on Linux the kernel sends it SIGKILL when
the launcher dies (prctl PR_SET_PDEATHSIG); elsewhere it notices within PARENT_CHECK_S seconds between runs.
"""
import contextlib
import os
import queue
import signal
import time

PARENT_CHECK_S = 5.0
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid):
    """SIGKILL this process when its parent dies (Linux), and exit now if the parent is already gone."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os._exit(1)


def run_log(log_dir, run):
    return os.path.join(log_dir, f"{run.name}.log")


def run_one(run, log_dir, repo, state):
    """Run `run` in this process, its output in its log; None on success, else its RunFailure."""
    import gc
    from contextlib import redirect_stderr, redirect_stdout

    from .base import run_in_process, run_isolated

    log = run_log(log_dir, run)
    with open(log, "a", buffering=1) as f, redirect_stdout(f), redirect_stderr(f):
        print(f"$ train.py {' '.join(map(str, run.argv))}   [worker PID {os.getpid()}, {time.strftime('%c')}]")
        failure = run_isolated(lambda: run_in_process(run, repo, way_out=WAY_OUT), state)
    gc.collect()
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return failure


# What `vlprompt run` names when a run's directory holds another run.
WAY_OUT = ("Give this variant its own folders with VARIANT=<name> (unset: named from the options after --) or "
           "--output <another folder>")


def worker_main(index, slot, parent_pid, tasks, results, log_dir, repo, threads):
    """A worker's life (module docstring)."""
    die_with_parent(parent_pid)
    started = time.time()
    os.environ["CUDA_VISIBLE_DEVICES"] = slot
    if not slot:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    worker_log = os.open(os.path.join(log_dir, f"worker-{index}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(worker_log, 1)
    os.dup2(worker_log, 2)
    import torch  # noqa: F401 (paid once per worker, before the first run)

    from ..data import index_reuse
    from ..plugins import load_codebase
    from .base import ProcessState, codebase_of

    load_codebase(codebase_of(repo))  # the codebase's trainers/ and datasets/, once per worker
    index_reuse.enable()  # the runs of a worker share dataset indexes (vlprompt.data.index_reuse)
    state = ProcessState()
    results.put(("ready", index, os.getpid(), time.time() - started))
    while True:
        try:
            run = tasks.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return
            continue
        if run is None:
            return
        start = time.time()
        failure = run_one(run, log_dir, repo, state)
        results.put(("end", index, (run.name, failure), time.time() - start))
        if failure is not None and not failure.user_error:
            print(f"[worker {index}] {run.name} failed with {failure}: this process may be broken, a fresh worker "
                  "takes the next run", flush=True)
            return
