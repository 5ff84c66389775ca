"""Launchers: where and how a protocol's runs (vlprompt.launchers.base.Run) are executed.

- `base`: the shared `Run` type, a run's state from its output tree (done / running / failed / other /
  pending), and running one in this process (`run_in_process`, `run_isolated`, `ProcessState`);
- `local` and `worker`: long-lived worker processes on this machine's GPUs (or CPU), replaced after a crash,
  stopped past a time limit, never outliving the launcher;
- `slurm`: job arrays through submitit, one per stage, with stage dependencies, grouping of short runs,
  requeueing on preemption and time limits, a frozen copy of the codebase, and `--wait`;
- `progress`: each running run's epoch, batch and ETA from its log, shown as bars or status lines;
- `durations`: Slurm's time formats, for `--time` and `--run-timeout`.

Nothing here imports torch, CLIP or submitit at import time.
"""
from .base import DONE, FAILED, PENDING, RUNNING, STATES, Run, RunState, is_finished, run_in_process, run_state

__all__ = ["Run", "RunState", "run_in_process", "run_state", "is_finished", "STATES", "DONE", "RUNNING", "FAILED",
           "PENDING"]
