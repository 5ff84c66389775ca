"""The local launcher: long-lived worker processes, one per slot, each running many runs in-process.

    failed = launch(stages, slots=["0", "0", "1", "1"], log_dir="output/runner-logs/base2new-maple")

A slot is a CUDA_VISIBLE_DEVICES value ("" = the CPU); a GPU takes several slots for several jobs at once.
Each worker is a "spawn"ed process (no fork after CUDA is initialised) that starts once and runs the
runs given to it with `run_in_process`, so Python start-up, imports, and reading the CLIP weights
(vlprompt.clip_loader keeps them) are paid once per worker, not once per run. Between runs the worker
puts back what a run may change of the process (`ProcessState`): train.py itself seeds every RNG, closes
its logger and clears the run warnings; results equal one process per run (tests/test_local_launcher.py).

A run starts when the runs it comes `after` have finished; if one of them failed, it fails at once
without running. A failed run does not stop the others; `launch` returns the failures (run, log) and
running the same plan again retries them (train.py --skip-finished skips the finished ones). Each run's
console output goes to `<log_dir>/<name>.log` (train.py also writes `<output_dir>/log.txt`); a worker's
own output (and whatever the C libraries print) to `<log_dir>/worker-<i>.log`. CPU workers share the
cores out (`cpu_threads`; a run's CPU results can depend on its number of threads, as in any process).
"""
import contextlib
import dataclasses
import os
import queue
import time

from ..protocols import all_runs
from .base import ProcessState, Run, run_in_process, run_isolated


# What `vlprompt run` names when a run's directory holds another run.
WAY_OUT = ("Give this variant its own folders with VARIANT=<name> (unset: named from the options after --) or "
           "--output <another folder>")


@dataclasses.dataclass
class Failure:
    name: str
    log: str
    message: str


def run_log(log_dir, run):
    return os.path.join(log_dir, f"{run.name}.log")


def _run_one(run, log_dir, repo, state):
    """Run `run` in this process, its output in its log; None on success, else the error message."""
    import gc

    log = run_log(log_dir, run)
    with open(log, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print(f"$ train.py {' '.join(map(str, run.argv))}   [worker PID {os.getpid()}, {time.strftime('%c')}]")
        error = run_isolated(lambda: run_in_process(run, repo, way_out=WAY_OUT), state)
    gc.collect()
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return error


def cpu_threads(cpu_slots):
    """Threads of each CPU worker: the cores shared out between the CPU slots (OMP_NUM_THREADS, when set, wins).
    Several CPU workers with all cores each would oversubscribe them many times over."""
    return max(1, (os.cpu_count() or 1) // max(1, cpu_slots))


def _worker(index, slot, tasks, results, log_dir, repo, threads):
    """A worker's life: set its device, import torch once, run what it is given until told to stop (None)."""
    started = time.time()
    os.environ["CUDA_VISIBLE_DEVICES"] = slot
    if not slot:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    worker_log = os.open(os.path.join(log_dir, f"worker-{index}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(worker_log, 1)
    os.dup2(worker_log, 2)
    import torch  # noqa: F401 (paid once per worker, before the first run)

    from ..plugins import load_codebase
    from .base import codebase_of

    load_codebase(codebase_of(repo))  # the codebase's trainers/ and datasets/, once per worker
    from ..data import index_reuse

    index_reuse.enable()  # the runs of a worker share dataset indexes (vlprompt.data.index_reuse)
    state = ProcessState()
    results.put(("ready", index, None, time.time() - started))
    while True:
        run = tasks.get()
        if run is None:
            return
        start = time.time()
        error = _run_one(run, log_dir, repo, state)
        results.put(("end", index, (run.name, error), time.time() - start))


def launch(stages, slots=("",), log_dir="runner-logs", repo=None, out=print, timings=None):
    """Run the plan's stages (lists of Run) on one worker per slot; returns the failures (list of Failure,
    in plan order). timings (a dict), if given, receives worker start-up and per-run wall times."""
    import multiprocessing

    runs = all_runs(stages)
    if not runs:
        return []
    os.makedirs(log_dir, exist_ok=True)
    by_name = {run.name: run for run in runs}
    if len(by_name) != len(runs):
        raise ValueError("run names must be unique in a plan")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    slots = list(slots)[:len(runs)] or [""]
    workers, inboxes, busy, ready = {}, {}, {}, set()
    timings = timings if timings is not None else {}
    timings.setdefault("startup", []), timings.setdefault("runs", {})
    threads = cpu_threads(slots.count(""))

    def start_worker(i):
        inboxes[i] = ctx.Queue()
        workers[i] = ctx.Process(target=_worker, args=(i, slots[i], inboxes[i], results, log_dir, repo, threads),
                                 name=f"vlprompt-worker-{i}", daemon=True)
        workers[i].start()

    pending, done, failed = list(runs), set(), {}

    def fail(run, message, log=None):
        failed[run.name] = Failure(run.name, log or run_log(log_dir, run), message)
        out(f"  FAILED {run.name} ({message}; log: {failed[run.name].log})")

    def dispatch():
        changed = True
        while changed:  # a failure can make later runs fail in turn
            changed = False
            for run in list(pending):
                blockers = [n for n in run.after if n in failed]
                if blockers:
                    pending.remove(run)
                    fail(run, f"not run: {blockers[0]} failed", failed[blockers[0]].log)
                    changed = True
        for run in list(pending):
            idle = [i for i in sorted(ready) if i not in busy]
            if not idle:
                break
            if all(n in done or n not in by_name for n in run.after):
                pending.remove(run)
                busy[idle[0]] = (run, time.time())
                inboxes[idle[0]].put(run)

    for i in range(len(slots)):
        start_worker(i)
    try:
        while pending or busy:
            dispatch()
            if not pending and not busy:
                break
            try:
                kind, i, payload, seconds = results.get(timeout=1.0)
            except queue.Empty:
                for i, worker in list(workers.items()):
                    if not worker.is_alive():
                        if i in busy:
                            run, _ = busy.pop(i)
                            fail(run, f"its worker died (exit code {worker.exitcode}); see "
                                      f"{os.path.join(log_dir, f'worker-{i}.log')}")
                        elif i not in ready:
                            raise RuntimeError(f"worker {i} could not start (exit code {worker.exitcode}): see "
                                               f"{os.path.join(log_dir, f'worker-{i}.log')}")
                        ready.discard(i)
                        if pending:
                            start_worker(i)
                continue
            if kind == "ready":
                ready.add(i)
                timings["startup"].append(seconds)
                continue
            name, error = payload
            run, _ = busy.pop(i)
            timings["runs"][name] = seconds
            if error is None:
                done.add(name)
                where = f"GPU {slots[i]}" if slots[i] else "CPU"
                out(f"  done   {name} [{where}, worker {i}, {seconds:.0f} s]")
            else:
                fail(run, error)
    finally:
        for i, worker in workers.items():
            if worker.is_alive():
                inboxes[i].put(None)
        deadline = time.time() + 30
        for worker in workers.values():
            worker.join(timeout=max(0.1, deadline - time.time()))
            if worker.is_alive():
                worker.terminate()
                worker.join()
    order = {run.name: k for k, run in enumerate(runs)}
    return sorted(failed.values(), key=lambda f: order[f.name])


__all__ = ["Failure", "Run", "launch"]
