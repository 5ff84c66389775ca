"""The Slurm launcher: a protocol's stages as job arrays, through submitit (`pip install vlprompt[slurm]`).

    stages = plan(...)                                   # [[Run, ...], [Run, ...]]  (vlprompt.protocols)
    submission = submit(stages, "output", SlurmOptions(partition="gpu", time="4:00:00", gpus_per_job=1))
    states = follow(stages, "output")                    # --wait: until every stage has ended
    for state in status(stages, "output").values(): print(state.describe())

One module per concern, each read top-down:
- `options`: SlurmOptions, the command-line options, their translation into sbatch's (through submitit);
- `scheduler`: what squeue and sacct say about jobs;
- `files`: what the launcher records under `<output>/slurm/` (submissions, submitit's logs, snapshots);
- `status`: each run's state from its output tree and its job's state (in flight runs are never
  submitted twice);
- `job`: what runs inside a job (a group of runs, requeued on preemption and time limits);
- `snapshot`: `--freeze-code`, the copy of the codebase the jobs run from;
- `submission`: one job array per stage, with stage dependencies and grouping of short runs;
- `watch`: `--wait`, following the jobs with live progress until every stage has ended.

Nothing here imports torch or submitit at import time (`status` works without either).
"""
from ..base import Run
from .files import read_submissions, task_log
from .watch import follow
from .job import GroupTask, run_group
from .options import (SlurmLauncherError, SlurmOptions, add_arguments, executor_parameters, options_from_args,
                      poll_seconds, sbatch_parameters, time_minutes)
from .scheduler import ACTIVE_JOB_STATES, job_states, squeue_jobs, wait_for_jobs as wait
from .status import in_flight, report, status
from .submission import StageSubmission, Submission, submit

__all__ = ["Run", "SlurmOptions", "Submission", "StageSubmission", "SlurmLauncherError", "GroupTask",
           "add_arguments", "options_from_args", "submit", "status", "follow", "wait", "report", "run_group",
           "in_flight", "squeue_jobs", "job_states", "time_minutes", "poll_seconds", "sbatch_parameters",
           "executor_parameters", "read_submissions", "task_log", "ACTIVE_JOB_STATES"]
