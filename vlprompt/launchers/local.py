"""The local launcher: long-lived worker processes, one per slot, each running many runs in-process.

    failed = launch(stages, slots=["0", "0", "1", "1"], log_dir="output/runner-logs/base2new-maple")

A slot is a CUDA_VISIBLE_DEVICES value ("" = the CPU); a GPU takes several slots for several jobs at once.
Each worker (vlprompt.launchers.worker) starts once and runs the runs given to it, so Python start-up,
imports, and reading the CLIP weights (vlprompt.clip_loader keeps them) are paid once per worker, not once
per run; results equal one process per run (tests/test_local_launcher.py).

What the launcher guarantees:
- a run starts when the runs it comes `after` have finished; if one of them failed, it fails at once
  without running. A failed run does not stop the others; `launch` returns the failures (run, log) and
  running the same plan again retries them (the runs skip what is finished);
- a worker whose run failed with anything but a user error (a bug, CUDA, out of memory) is replaced by a
  fresh process before the next run; a worker that dies (a segfault, the OOM killer) fails its run and is
  replaced too; with `run_timeout` (seconds), a run that exceeds it is stopped with its worker and reported;
- a run whose directory another live process holds (another `vlprompt run` on the same output, a script)
  is not failed: it is reported as running there, and this launcher waits for it; when it is released
  finished, it counts as done, otherwise this launcher runs it;
- the workers die with the launcher, whatever kills it (vlprompt.launchers.worker).

Each run's console output goes to `<log_dir>/<name>.log` (train.py also writes `<output_dir>/log.txt`); a
worker's own output (and whatever the C libraries print) to `<log_dir>/worker-<i>.log`. CPU workers share
the cores out (`cpu_threads`; a run's CPU results can depend on its number of threads, as in any process).
"""
import dataclasses
import os
import queue
import signal
import time

from ..protocols import all_runs
from ..run_dir import lock_holder
from .base import DONE, RUNNING, Run, run_state
from .durations import format_duration
from .progress import Active
from .worker import WAY_OUT, run_log, worker_main  # noqa: F401 (WAY_OUT and run_log: this module's API)


@dataclasses.dataclass
class Failure:
    name: str
    log: str
    message: str


def cpu_threads(cpu_slots):
    """Threads of each CPU worker: the cores shared out between the CPU slots (OMP_NUM_THREADS, when set, wins).
    Several CPU workers with all cores each would oversubscribe them many times over."""
    return max(1, (os.cpu_count() or 1) // max(1, cpu_slots))


def _exit_text(code):
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Launch:
    """One launch: the runs' bookkeeping and the workers (launch() below is its use)."""

    def __init__(self, runs, slots, log_dir, repo, out, timings, run_timeout, display):
        import multiprocessing

        self.runs, self.slots, self.log_dir, self.repo, self.out = runs, slots, log_dir, repo, out
        self.run_timeout, self.display = run_timeout, display
        self.by_name = {run.name: run for run in runs}
        self.ctx = multiprocessing.get_context("spawn")
        self.results = self.ctx.Queue()
        self.threads = cpu_threads(slots.count(""))
        self.workers, self.inboxes, self.ready, self.pids = {}, {}, set(), {}
        self.busy = {}          # worker index -> (run, start time)
        self.waiting = {}       # run name -> run, held by another process
        self.pending, self.done, self.failed = list(runs), set(), {}
        self.timings = timings

    # ------------------------------------------------------------------------------------- workers
    def start_worker(self, i):
        self.pids.pop(i, None)  # set when it says it is ready
        self.inboxes[i] = self.ctx.Queue()
        self.workers[i] = self.ctx.Process(
            target=worker_main, name=f"vlprompt-worker-{i}", daemon=True,
            args=(i, self.slots[i], os.getpid(), self.inboxes[i], self.results, self.log_dir, self.repo, self.threads))
        self.workers[i].start()

    def replace_worker(self, i, kill=False):
        worker = self.workers[i]
        if kill and worker.is_alive():
            worker.kill()
        worker.join(timeout=30)
        if worker.is_alive():
            worker.kill()
            worker.join()
        self.ready.discard(i)
        if self.pending or self.waiting:
            self.start_worker(i)

    def where(self, i):
        return f"GPU {self.slots[i]}" if self.slots[i] else "CPU"

    def stop_workers(self):
        for i, worker in self.workers.items():
            if worker.is_alive():
                self.inboxes[i].put(None)
        deadline = time.time() + 30
        for worker in self.workers.values():
            worker.join(timeout=max(0.1, deadline - time.time()))
            if worker.is_alive():
                worker.kill()
                worker.join()

    # ------------------------------------------------------------------------------------------ runs
    def fail(self, run, message, log=None):
        self.failed[run.name] = Failure(run.name, log or run_log(self.log_dir, run), message)
        self.out(f"  FAILED {run.name} ({message}; log: {self.failed[run.name].log})")

    def wait_for_holder(self, run, holder):
        self.waiting[run.name] = run
        self.out(f"  held   {run.name}: running in {holder} (another launcher or script); waiting for it")

    def check_waiting(self):
        """Runs held by another process: still held, they wait; released, they are done or run here."""
        for name, run in list(self.waiting.items()):
            state = run_state(run)
            if state.state == RUNNING:
                continue
            del self.waiting[name]
            if state.state == DONE:
                self.done.add(name)
                self.out(f"  done   {name} [by the process that held it]")
            else:
                self.pending.insert(0, run)

    def dispatch(self):
        changed = True
        while changed:  # a failure can make later runs fail in turn
            changed = False
            for run in list(self.pending):
                blockers = [n for n in run.after if n in self.failed]
                if blockers:
                    self.pending.remove(run)
                    self.fail(run, f"not run: {blockers[0]} failed", self.failed[blockers[0]].log)
                    changed = True
        for run in list(self.pending):
            idle = [i for i in sorted(self.ready) if i not in self.busy]
            if not idle:
                break
            if all(n in self.done or n not in self.by_name for n in run.after):
                self.pending.remove(run)
                holder = lock_holder(run.output_dir)
                if holder is not None:
                    self.wait_for_holder(run, holder)
                    continue
                self.busy[idle[0]] = (run, time.time())
                self.inboxes[idle[0]].put(run)

    def receive(self, timeout):
        """Handle the workers' messages (waiting up to `timeout` seconds for the first); False if none came."""
        try:
            message = self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
        except queue.Empty:
            return False
        while True:
            self.handle(*message)
            try:
                message = self.results.get_nowait()
            except queue.Empty:
                return True

    def handle(self, kind, i, payload, seconds):
        if kind == "ready":
            self.ready.add(i)
            self.pids[i] = payload
            self.timings["startup"].append(seconds)
            self.timings["workers"].append(payload)
            return
        name, failure = payload
        run, _ = self.busy.pop(i)
        self.timings["runs"][name] = seconds
        if failure is None:
            self.done.add(name)
            self.out(f"  done   {name} [{self.where(i)}, worker {i}, {seconds:.0f} s]")
        elif failure.busy:
            self.wait_for_holder(run, failure.holder)
        else:
            self.fail(run, failure.message)
            if not failure.user_error:  # the worker exits: a fresh one takes the next run
                self.replace_worker(i)

    def check_workers(self):
        """Workers that died (their run fails) or whose run exceeded the time limit (stopped, reported)."""
        now = time.time()
        for i, worker in list(self.workers.items()):
            if not worker.is_alive():
                self.receive(timeout=0)  # what it sent before it exited comes first
                if self.workers[i] is not worker:
                    continue  # replaced meanwhile
                if i in self.busy:
                    run, _ = self.busy.pop(i)
                    self.fail(run, f"its worker died ({_exit_text(worker.exitcode)}); see "
                                   f"{os.path.join(self.log_dir, f'worker-{i}.log')}")
                elif i not in self.pids:
                    raise RuntimeError(f"worker {i} could not start ({_exit_text(worker.exitcode)}): see "
                                       f"{os.path.join(self.log_dir, f'worker-{i}.log')}")
                self.ready.discard(i)
                if self.pending or self.waiting:
                    self.replace_worker(i)
            elif self.run_timeout and i in self.busy and now - self.busy[i][1] > self.run_timeout:
                run, _ = self.busy.pop(i)
                self.fail(run, f"timed out after {format_duration(self.run_timeout)} (--run-timeout): stopped with "
                               f"its worker")
                self.replace_worker(i, kill=True)

    def show(self, force=False):
        if self.display is None:
            return
        counts = {"done": len(self.done), "failed": len(self.failed), "running": len(self.busy) + len(self.waiting),
                  "pending": len(self.pending)}
        active = [Active(f"[{self.where(i)} {i}]", run.name, run.output_dir, started)
                  for i, (run, started) in sorted(self.busy.items())]
        active += [Active("[elsewhere]", run.name, run.output_dir) for run in self.waiting.values()]
        self.display.update(counts, active, force=force)

    def run(self):
        for i in range(len(self.slots)):
            self.start_worker(i)
        try:
            while self.pending or self.busy or self.waiting:
                self.check_waiting()
                self.dispatch()
                if not (self.pending or self.busy or self.waiting):
                    break
                self.receive(timeout=0.5)
                self.check_workers()
                self.show()
        finally:
            self.stop_workers()
            if self.display is not None:
                self.show(force=True)
                self.display.close()
        order = {run.name: k for k, run in enumerate(self.runs)}
        return sorted(self.failed.values(), key=lambda f: order[f.name])


def launch(stages, slots=("",), log_dir="runner-logs", repo=None, out=print, timings=None, run_timeout=None,
           display=None):
    """Run the plan's stages (lists of Run) on one worker per slot; returns the failures (list of Failure,
    in plan order). run_timeout: seconds a run may take (None: no limit). display: a
    vlprompt.launchers.progress.ProgressDisplay to keep up to date. timings (a dict), if given, receives
    worker start-up and per-run wall times and the workers' PIDs."""
    runs = all_runs(stages)
    if not runs:
        return []
    os.makedirs(log_dir, exist_ok=True)
    if len({run.name for run in runs}) != len(runs):
        raise ValueError("run names must be unique in a plan")
    timings = timings if timings is not None else {}
    for key, empty in (("startup", []), ("runs", {}), ("workers", [])):
        timings.setdefault(key, empty)
    slots = list(slots)[:len(runs)] or [""]
    return _Launch(runs, slots, log_dir, repo, out, timings, run_timeout, display).run()


__all__ = ["Failure", "Run", "launch", "cpu_threads", "run_log"]
