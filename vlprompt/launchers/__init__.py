"""Launchers: where and how a protocol's runs (vlprompt.launchers.base.Run) are executed.

- `base`: the shared `Run` type, a run's state from its output tree (done / running / failed / pending),
  and `run_in_process` (the repository's train.py in this process);
- `slurm`: job arrays through submitit, one per stage, with stage dependencies and grouping of short runs.

Nothing here imports torch, CLIP or submitit at import time.
"""
from .base import DONE, FAILED, PENDING, RUNNING, STATES, Run, RunState, is_finished, run_in_process, run_state

__all__ = ["Run", "RunState", "run_in_process", "run_state", "is_finished", "STATES", "DONE", "RUNNING", "FAILED",
           "PENDING"]
