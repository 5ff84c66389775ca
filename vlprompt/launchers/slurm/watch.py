"""`--wait`: follow a submitted protocol until every stage has ended, with the same live progress as the local
launcher (each running run's epoch, batch and ETA, read from its log.txt) and a line per run that ends.

The scheduler is asked every `poll_s` seconds (squeue, and sacct where the cluster keeps accounting); the
runs' logs are read more often for the bars, which costs the controller nothing.
"""
import time

from ..base import DONE, FAILED, RUNNING
from ..progress import Active
from .options import SlurmLauncherError
from .status import counts_of, in_flight, status, submitted_jobs

# squeue failing this many times in a row ends --wait (one failure is retried at the next poll)
SCHEDULER_FAILURES = 5


def follow(stages, output, poll_s=30.0, display=None, out=print, timeout=None, quiet=(), sleep=time.sleep,
           clock=time.monotonic):
    """Block until no run of `stages` is in flight (vlprompt.launchers.slurm.status.in_flight); returns the final
    {name: RunState}, or None when `timeout` seconds passed first. A line is printed for each run that ends,
    except those named in `quiet` (finished before)."""
    deadline = None if timeout is None else clock() + timeout
    refresh_s = min(poll_s, display.refresh_s) if display is not None and display.terminal else poll_s
    seen = dict.fromkeys(quiet, DONE)
    failures = 0
    while True:
        jobs = submitted_jobs(output)
        if jobs is None:  # squeue failed: the tree alone cannot tell whether the jobs still run
            failures += 1
            if failures >= SCHEDULER_FAILURES:
                raise SlurmLauncherError(f"squeue failed {failures} times in a row: cannot follow the jobs; see them "
                                         "later with the same command and --status")
            out(f"WARNING: squeue failed; asking again in {poll_s:g} s")
            sleep(poll_s)
            continue
        failures = 0
        states = status(stages, output, jobs=jobs)
        _announce(states, seen, out)
        counts, active = counts_of(states), _active(states)
        if not any(in_flight(s) for s in states.values()):
            if display is not None:
                display.update(counts, active, force=True)
            return states
        next_poll = clock() + poll_s
        while True:
            if display is not None:
                display.update(counts, active)
            if deadline is not None and clock() >= deadline:
                return None
            left = next_poll - clock()
            if left <= 0:
                break
            sleep(min(refresh_s, left))


def _active(states):
    return [Active(f"[job {s.job}]" if s.job else "[elsewhere]", s.name, s.output_dir) for s in states.values()
            if s.state == RUNNING]


def _announce(states, seen, out):
    """A line for each run that has ended since the last look."""
    for name, state in states.items():
        before, seen[name] = seen.get(name), state.state
        if before == state.state:
            continue
        if state.state == DONE:
            out(f"  done   {name}" + (f" [job {state.job}]" if state.job else ""))
        elif state.state == FAILED:
            out(f"  FAILED {name}" + (f" [job {state.job}: {state.scheduler}]" if state.scheduler else "")
                + f" (log: {state.log})")
