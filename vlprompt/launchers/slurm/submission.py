"""Submitting a plan: one job array per stage, through submitit.

Each array task runs `group` runs (vlprompt.launchers.slurm.job.GroupTask). A stage's array depends on the
previous submitted array with `afterany` (it starts when that array has ended, whatever its outcome) and on
the jobs of earlier-stage runs still queued or running from an earlier submission. `afterok` is not used:
one failed training run would leave every test of the stage pending forever (DependencyNeverSatisfied), so
failures would not be isolated; every run checks its own inputs when its task reaches it instead.

Submitting again submits only what is not finished and not in flight (vlprompt.launchers.slurm.status): a
run whose latest job is queued or running is never submitted twice, whatever its directory says, and a run
held by a live process is left to it. A later-stage run that needs a run in flight whose job is unknown
(started outside this launcher) is deferred: submit again when it has finished. A killed, cancelled or
timed-out run is failed and is submitted again; it resumes from its last checkpoint.
"""
import dataclasses
import datetime
import os

from ..base import DONE, Run
from .files import logs_folder, read_submissions, snapshots_dir, write_submissions
from .job import GroupTask
from .options import SlurmLauncherError, SlurmOptions, check_options, describe_resources, executor_parameters
from .scheduler import is_active
from .snapshot import freeze_codebase, frozen_spec
from .status import in_flight, status


@dataclasses.dataclass
class StageSubmission:
    stage: int
    job_ids: list                 # one per array task ("123_0", ...), or ["123"] for a single task
    groups: list                  # [[run name, ...], ...] per task
    dependency: str = None        # the sbatch --dependency it was given

    @property
    def array_id(self):
        return self.job_ids[0].split("_")[0] if self.job_ids else None


@dataclasses.dataclass
class Submission:
    stages: list                  # StageSubmission per stage with something submitted
    skipped: dict                 # run name -> why it was not submitted (done / in flight as job ...)
    deferred: dict                # run name -> why it must wait for the next submission
    resources: str = ""           # what each job asks for
    snapshot: object = None       # the frozen codebase the jobs run from (--freeze-code), a Snapshot

    @property
    def job_ids(self):
        return [job for stage in self.stages for job in stage.job_ids]

    def describe(self):
        lines = []
        for s in self.stages:
            runs = sum(len(g) for g in s.groups)
            lines.append(f"stage {s.stage + 1}: array {s.array_id}, {len(s.groups)} tasks, {runs} runs"
                         + (f", after {s.dependency}" if s.dependency else ""))
        if self.stages and self.resources:
            lines.append(f"each job: {self.resources}")
        if self.snapshot is not None:
            lines.append(f"the jobs run from a frozen copy of the codebase: {self.snapshot.codebase}"
                         + (f" (commit {self.snapshot.commit[:10]}{', with changes' if self.snapshot.dirty else ''})"
                            if self.snapshot.commit else ""))
        if self.skipped:
            lines.append(f"not submitted: {len(self.skipped)} runs (done or in flight)")
        for name, why in self.deferred.items():
            lines.append(f"deferred: {name}: {why}")
        return "\n".join(lines) or "nothing to submit"


def check_plan(stages):
    names, seen = {}, set()
    for stage in stages:
        for run in stage:
            if run.name in names:
                raise SlurmLauncherError(f"two runs are named {run.name!r}: names must be unique in a plan")
            for dep in run.after:
                if dep not in seen:
                    raise SlurmLauncherError(f"{run.name} needs {dep!r}, which is not a run of an earlier stage")
            names[run.name] = run
        seen.update(run.name for run in stage)
    return names


def make_executor(output, options):
    try:
        import submitit
    except ImportError:
        raise SlurmLauncherError("the Slurm launcher needs submitit: pip install 'vlprompt[slurm]' "
                                 "(or pip install submitit)") from None
    # max_num_timeout: how many times a task at its time limit is requeued (preemption: always)
    return submitit.SlurmExecutor(folder=logs_folder(output), max_num_timeout=int(options.max_timeouts))


def submit(stages, output, options=None, repo=None, executor=None):
    """Submit what is not finished of `stages` (lists of Run) as one job array per stage (module
    docstring). Returns a Submission; re-running it submits only what is still unfinished."""
    options = options or SlurmOptions()
    check_options(options)
    by_name = check_plan(stages)
    if repo is None:
        from ...plugins import find_codebase
        repo = find_codebase("train.py", None, what="the repository's train.py")
    repo = os.path.abspath(repo)
    output = os.path.abspath(output)
    submissions = read_submissions(output)
    states = status(stages, output)
    needs = {name: os.path.abspath(run.output_dir) for name, run in by_name.items()}
    executor = executor or make_executor(output, options)

    submitted, skipped, deferred, snapshot = [], {}, {}, None
    in_flight_jobs = {}       # run name -> its job id (None: unknown) for runs left to finish on their own
    last_array = None         # the latest array submitted now (each array depends on the one before)
    for k, stage in enumerate(stages):
        todo = []
        for run in stage:
            state = states[run.name]
            if state.state == DONE:
                skipped[run.name] = "done"
                continue
            if in_flight(state):
                in_flight_jobs[run.name] = state.job if is_active(state.scheduler) else None
                skipped[run.name] = f"{state.state}" + (f" (job {state.job}: {state.scheduler})" if state.job else "") \
                    + (f" ({state.holder})" if state.holder is not None else "")
                continue
            blocked = [dep for dep in run.after
                       if dep in deferred or (dep in in_flight_jobs and in_flight_jobs[dep] is None)]
            if blocked:
                deferred[run.name] = (f"needs {', '.join(blocked)}, still running outside a known job or deferred: "
                                      "submit again when it has finished")
                continue
            todo.append(run)
        if not todo:
            continue
        sbatch, job_repo = {}, repo
        if options.freeze:
            snapshot = snapshot or freeze_codebase(repo, snapshots_dir(output))
            sbatch, job_repo = snapshot.sbatch_parameters(), snapshot.codebase
            todo = [Run(run.name, frozen_spec(run.spec, repo, snapshot), after=run.after) for run in todo]
        after = [last_array] if last_array else []
        earlier = {r.name for st in stages[:k] for r in st}
        after += sorted({job for name, job in in_flight_jobs.items() if job and name in earlier})
        dependency = "afterany:" + ":".join(after) if after else None
        groups = [todo[i:i + int(options.group)] for i in range(0, len(todo), int(options.group))]
        executor.update_parameters(**executor_parameters(options, dependency, sbatch))
        try:
            jobs = executor.map_array(GroupTask(needs, job_repo), groups)
        except Exception as e:  # submitit raises on sbatch's refusal; say which stage
            raise SlurmLauncherError(f"sbatch refused stage {k + 1} ({len(groups)} tasks): {e}") from e
        job_ids = [str(job.job_id) for job in jobs]
        now = datetime.datetime.now().isoformat(timespec="seconds")
        for job_id, group in zip(job_ids, groups):
            for run in group:
                submissions[run.name] = {"job": job_id, "stage": k, "submitted_at": now, "output_dir": run.output_dir}
                if snapshot is not None:
                    submissions[run.name]["snapshot"] = snapshot.folder
        write_submissions(output, submissions)
        submitted.append(StageSubmission(k, job_ids, [[r.name for r in g] for g in groups], dependency))
        last_array = job_ids[0].split("_")[0]
    return Submission(submitted, skipped, deferred, describe_resources(options), snapshot)
