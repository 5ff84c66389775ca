"""The Slurm launcher: a protocol's stages as job arrays, through submitit (`pip install vlprompt[slurm]`).

    stages = plan(...)                                   # [[Run, ...], [Run, ...]]  (vlprompt.protocols)
    submission = submit(stages, "output", SlurmOptions(partition="gpu", time="4:00:00", gpus_per_job=1))
    for state in status(stages, "output").values(): print(state.describe())

What it submits:
- one job array per stage; each array task runs `group` runs (default 1) one after the other in one
  process (train.py's main, so that a group pays Python and import start-up once): short runs need not
  wait in the queue one by one;
- a stage's array depends on the previous submitted array with `afterany` (it starts when that array has
  ended, whatever its outcome) and on the jobs of earlier-stage runs still queued or running from an
  earlier submission. `afterok` is not used: one failed training run would leave every test of the stage
  pending forever (DependencyNeverSatisfied), so failures would not be isolated. Instead every run checks
  its own inputs when its task reaches it: a run whose `after` runs are not finished fails at once,
  naming them, and the rest of the task goes on;
- failures are isolated: a task catches a failing run, records it, runs the rest of its group, and exits
  non-zero at the end naming every failure (its Slurm state is FAILED; each run's log is its log.txt).

Re-running `submit` with the same stages submits only what is not finished: runs whose output directory
holds a finished result of its identity (result.json fingerprint == identity.json's) are skipped, and so
are runs still in flight (their directory's lock is held, or the job that a previous submission recorded
for them is still in squeue). A later-stage run that needs a run in flight whose job is unknown (started
outside this launcher) is deferred, not submitted: submit again when it has finished. A killed,
cancelled or timed-out run is failed (identity.json, no finished result, no lock holder) and is
submitted again; train.py resumes it from its last checkpoint.

Files: `<output>/slurm/submissions.json` (run name -> job id of its latest submission) and submitit's
folder `<output>/slurm/logs/<job id>/` (sbatch script, the task's stdout/stderr with a summary of its
runs). Each run's own log is `<its output dir>/log.txt`.

The module imports neither torch nor submitit at import time (`status` works without either).
"""
import dataclasses
import datetime
import gc
import math
import os
import re
import shlex
import subprocess
import sys
import time

from ..errors import UserError
from ..fileio import write_json_atomic
from .base import DONE, FAILED, LOG_FILE, PENDING, RUNNING, Run, is_finished, run_in_process, run_state

SLURM_DIR = "slurm"
SUBMISSIONS_FILE = "submissions.json"
ACTIVE_JOB_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED",
                     "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT")
DEFAULT_TIME_MIN = 120


class SlurmLauncherError(UserError):
    """A Slurm submission that cannot be made (bad option, submitit missing, sbatch refused)."""


# ------------------------------------------------------------------------------------------- options
@dataclasses.dataclass
class SlurmOptions:
    partition: str = None
    time: object = DEFAULT_TIME_MIN       # minutes, or Slurm's formats: "MM", "HH:MM:SS", "D-HH[:MM[:SS]]"
    gpus_per_job: int = 0
    cpus_per_job: int = None
    mem: str = None                       # as sbatch --mem: "32G", "16000M"
    account: str = None
    array_parallelism: int = None         # at most this many tasks of an array at once (the array's %N)
    group: int = 1                        # runs per array task
    sbatch: list = dataclasses.field(default_factory=list)  # extra "#SBATCH" lines: "--qos=high", "constraint=a100"
    setup: list = dataclasses.field(default_factory=list)   # shell lines run before the task (module load ...)
    job_name: str = "vlprompt"


def add_arguments(parser):
    """The launcher's command-line options (for `vlprompt run ... --launcher slurm`)."""
    g = parser.add_argument_group("Slurm launcher (--launcher slurm)")
    g.add_argument("--partition", default=None, help="the partition (sbatch --partition)")
    g.add_argument("--time", default=str(DEFAULT_TIME_MIN),
                   help=f"time limit of each job: minutes or HH:MM:SS or D-HH:MM:SS (default {DEFAULT_TIME_MIN} min)")
    g.add_argument("--gpus-per-job", type=int, default=0, help="GPUs of each job (default 0)")
    g.add_argument("--cpus-per-job", type=int, default=None, help="CPUs of each job (sbatch --cpus-per-task)")
    g.add_argument("--mem", default=None, help="memory of each job, as sbatch --mem (e.g. 32G)")
    g.add_argument("--account", default=None, help="the account to charge (sbatch --account)")
    g.add_argument("--array-parallelism", type=int, default=None,
                   help="at most this many tasks of a stage's array at once")
    g.add_argument("--group", type=int, default=1, help="runs per array task, one after the other (default 1)")
    g.add_argument("--sbatch", action="append", default=[], metavar="LINE",
                   help='an extra #SBATCH line, e.g. --sbatch "--qos=high" (repeatable)')
    g.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help='a shell line run in each job before the runs, e.g. --setup "module load cuda" (repeatable)')
    return g


def options_from_args(args):
    return SlurmOptions(partition=args.partition, time=args.time, gpus_per_job=args.gpus_per_job,
                        cpus_per_job=args.cpus_per_job, mem=args.mem, account=args.account,
                        array_parallelism=args.array_parallelism, group=args.group, sbatch=list(args.sbatch),
                        setup=list(args.setup))


def time_minutes(value):
    """Slurm's time formats (or a number of minutes) as whole minutes (rounded up)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minutes = value
    else:
        text = str(value).strip()
        m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
        if not m:
            raise SlurmLauncherError(f"--time {value!r}: use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
        days, a, b, c = m.groups()
        parts = [int(x) for x in (a, b, c) if x is not None]
        if days is not None:  # D-HH[:MM[:SS]]
            hours, mins, secs = (parts + [0, 0])[:3]
            minutes = int(days) * 1440 + hours * 60 + mins + secs / 60
        elif len(parts) == 1:
            minutes = parts[0]
        elif len(parts) == 2:  # MM:SS
            minutes = parts[0] + parts[1] / 60
        else:
            minutes = parts[0] * 60 + parts[1] + parts[2] / 60
    if minutes <= 0:
        raise SlurmLauncherError(f"--time {value!r}: must be positive")
    return int(math.ceil(minutes))


def sbatch_parameters(lines):
    """Extra #SBATCH lines ("--qos=high", "#SBATCH --constraint a100", "exclusive") as submitit's
    additional_parameters {name: value (True for a flag)}."""
    params = {}
    for line in lines or ():
        text = line.strip()
        if text.startswith("#SBATCH"):
            text = text[len("#SBATCH"):].strip()
        tokens = shlex.split(text)
        if not tokens:
            continue
        if len(tokens) > 2 or not tokens[0].lstrip("-"):
            raise SlurmLauncherError(f"--sbatch {line!r}: give one option per line, e.g. --sbatch '--qos=high'")
        key = tokens[0].lstrip("-")
        if "=" in key:
            key, value = key.split("=", 1)
        elif len(tokens) == 2:
            value = tokens[1]
        else:
            value = True
        params[key.replace("-", "_")] = value
    return params


# SlurmOptions field -> submitit's SlurmExecutor parameter, set only when the option is given.
EXECUTOR_PARAMETERS = {"partition": ("partition", str), "gpus_per_job": ("gpus_per_node", int),
                       "cpus_per_job": ("cpus_per_task", int), "mem": ("mem", str), "account": ("account", str),
                       "array_parallelism": ("array_parallelism", int), "setup": ("setup", list)}


def _executor_parameters(options, dependency):
    params = {"job_name": options.job_name, "time": time_minutes(options.time), "nodes": 1, "ntasks_per_node": 1,
              "stderr_to_stdout": True}
    for option, (parameter, convert) in EXECUTOR_PARAMETERS.items():
        value = getattr(options, option)
        if value:
            params[parameter] = convert(value)
    extra = sbatch_parameters(options.sbatch)
    if dependency:
        params["dependency"] = dependency
    if extra:
        params["additional_parameters"] = extra
    return params


# ---------------------------------------------------------------------------------- the scheduler
def scheduler_jobs():
    """{job id: state} of the user's jobs in squeue (array tasks one per line, "123_4"); None where squeue
    cannot be asked (no Slurm here, or it fails)."""
    try:
        proc = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    jobs = {}
    for line in proc.stdout.split():
        if "|" in line:
            job, state = line.split("|", 1)
            jobs[job] = state
    return jobs


def _job_in(jobs, job):
    """The squeue state of `job` ("123_4" or "123"), or None when it is not queued."""
    if jobs is None or not job:
        return None
    if job in jobs:
        return jobs[job]
    # A pending array shows as "123_[4-7]" when squeue does not expand it: match the range too.
    master, _, index = job.partition("_")
    for name, state in jobs.items():
        m = re.fullmatch(re.escape(master) + r"_\[(.*)\]", name)
        if m and index and _in_ranges(int(index), m.group(1)):
            return state
    return None


def _in_ranges(index, text):
    for part in text.split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (int(lo) <= index <= int(hi or lo)):
            return True
    return False


def slurm_dir(output):
    return os.path.join(output, SLURM_DIR)


def task_log(output, job):
    """The stdout/stderr of array task `job` ("123_4"), where submitit writes it."""
    folder = os.path.join(os.path.abspath(slurm_dir(output)), "logs", job)
    path = os.path.join(folder, f"{job}_0_log.out")
    return path if os.path.isfile(path) else folder


def read_submissions(output):
    import json

    path = os.path.join(slurm_dir(output), SUBMISSIONS_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        print(f"WARNING: cannot read {path} ({e}): the jobs of earlier submissions are unknown", file=sys.stderr)
        return {}


# ------------------------------------------------------------------------------------------- status
def status(stages, output, jobs="ask"):
    """{run name: RunState} (done / running / failed / pending, module docstring of .base) from the output
    tree, with the job id of each run's latest submission and what squeue says about it where it can.
    jobs: squeue's {job: state} (default: ask squeue; None: do not)."""
    submissions = read_submissions(output)
    if jobs == "ask":
        jobs = scheduler_jobs() if submissions else None
    states = {}
    for stage in stages:
        for run in stage:
            state = run_state(run)
            job = (submissions.get(run.name) or {}).get("job")
            if job:
                state.job = job
                state.scheduler = _job_in(jobs, job) if jobs is not None else None
                if state.state == PENDING and jobs is not None and state.scheduler is None:
                    # its job has ended, and the run never wrote its identity: it failed before (a bad
                    # option, a missing dataset, a run it needs that failed); the task's log says why
                    state.state, state.log = FAILED, task_log(output, job)
            states[run.name] = state
    return states


def _in_flight(state):
    """Still to finish without a new submission: its lock is held, or it has not started and its latest
    job is still queued or running (e.g. waiting behind the other runs of its group)."""
    return state.state == RUNNING or (state.state == PENDING and state.scheduler in ACTIVE_JOB_STATES)


# ------------------------------------------------------------------------------------- in the job
def run_group(runs, needs, repo=None):
    """What one array task runs (in the job, by submitit): `runs` one after the other, each skipped when
    finished, failed at once when a run it needs is not finished (`needs`: {name: output dir}), and
    isolated from the others (ProcessState puts back what a run changes of the process; the runs share
    dataset indexes, vlprompt.data.index_reuse). Raises at the end, naming every failure, if any failed."""
    from ..data import index_reuse
    from .base import ProcessState, run_isolated

    index_reuse.enable()
    state = ProcessState()
    failures, summary = [], []
    for run in runs:
        log = os.path.join(run.output_dir, LOG_FILE)
        started = time.time()
        if is_finished(run.output_dir):
            summary.append(f"{run.name}: already finished")
            print(f"[vlprompt] {run.name}: already finished ({run.output_dir})", flush=True)
            continue
        missing = [name for name in run.after if not is_finished(needs.get(name, ""))]
        if missing:
            message = f"{run.name}: not run, it needs {', '.join(missing)}, which did not finish"
            failures.append(message)
            print(f"[vlprompt] {message}", flush=True)
            continue
        print(f"[vlprompt] {run.name}: starting ({run.output_dir})", flush=True)

        def call(run=run):
            run_in_process(run, repo)
            if not is_finished(run.output_dir):
                raise RuntimeError("it ended without a result.json of its identity")

        error = run_isolated(call, state)
        _free_memory()
        if error is not None:
            failures.append(f"{run.name}: failed, log: {log}")
            print(f"[vlprompt] {run.name}: FAILED (log: {log})", flush=True)
        else:
            summary.append(f"{run.name}: done in {time.time() - started:.1f} s")
            print(f"[vlprompt] {run.name}: done in {time.time() - started:.1f} s", flush=True)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(runs)} runs of this task failed:\n  " + "\n  ".join(failures))
    return summary


def _free_memory():
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------- submission
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

    @property
    def job_ids(self):
        return [job for stage in self.stages for job in stage.job_ids]

    def describe(self):
        lines = []
        for s in self.stages:
            runs = sum(len(g) for g in s.groups)
            lines.append(f"stage {s.stage + 1}: array {s.array_id}, {len(s.groups)} tasks, {runs} runs"
                         + (f", after {s.dependency}" if s.dependency else ""))
        if self.skipped:
            lines.append(f"not submitted: {len(self.skipped)} runs (done or in flight)")
        for name, why in self.deferred.items():
            lines.append(f"deferred: {name}: {why}")
        return "\n".join(lines) or "nothing to submit"


def _check_plan(stages):
    names, seen = {}, set()
    for k, stage in enumerate(stages):
        for run in stage:
            if run.name in names:
                raise SlurmLauncherError(f"two runs are named {run.name!r}: names must be unique in a plan")
            for dep in run.after:
                if dep not in seen:
                    raise SlurmLauncherError(f"{run.name} needs {dep!r}, which is not a run of an earlier stage")
            names[run.name] = run
        seen.update(run.name for run in stage)
    return names


def _executor(output, options):
    try:
        import submitit
    except ImportError:
        raise SlurmLauncherError("the Slurm launcher needs submitit: pip install 'vlprompt[slurm]' "
                                 "(or pip install submitit)") from None
    folder = os.path.join(os.path.abspath(slurm_dir(output)), "logs", "%j")
    return submitit.SlurmExecutor(folder=folder, max_num_timeout=0)


def submit(stages, output, options=None, repo=None, executor=None):
    """Submit what is not finished of `stages` (lists of Run) as one job array per stage (module
    docstring). Returns a Submission; re-running it submits only what is still unfinished."""
    options = options or SlurmOptions()
    if int(options.group) < 1:
        raise SlurmLauncherError(f"--group {options.group}: must be at least 1")
    by_name = _check_plan(stages)
    if repo is None:
        from ..plugins import find_codebase
        repo = find_codebase("train.py", None, what="the repository's train.py")
    repo = os.path.abspath(repo)
    output = os.path.abspath(output)
    submissions = read_submissions(output)
    states = status(stages, output)
    needs = {name: os.path.abspath(run.output_dir) for name, run in by_name.items()}
    executor = executor or _executor(output, options)

    submitted, skipped, deferred = [], {}, {}
    in_flight = {}            # run name -> its job id (None: unknown) for runs left to finish on their own
    last_array = None         # the latest array submitted now (each array depends on the one before)
    for k, stage in enumerate(stages):
        todo = []
        for run in stage:
            state = states[run.name]
            if state.state == DONE:
                skipped[run.name] = "done"
                continue
            if _in_flight(state):
                in_flight[run.name] = state.job if state.scheduler in ACTIVE_JOB_STATES else None
                skipped[run.name] = f"{state.state}" + (f" (job {state.job}: {state.scheduler})" if state.job else "")
                continue
            blocked = [dep for dep in run.after if dep in deferred or (dep in in_flight and in_flight[dep] is None)]
            if blocked:
                deferred[run.name] = (f"needs {', '.join(blocked)}, still running outside a known job or deferred: "
                                      "submit again when it has finished")
                continue
            todo.append(run)
        if not todo:
            continue
        after = [last_array] if last_array else []
        earlier = {r.name for st in stages[:k] for r in st}
        after += sorted({job for name, job in in_flight.items() if job and name in earlier})
        dependency = "afterany:" + ":".join(after) if after else None
        groups = [todo[i:i + int(options.group)] for i in range(0, len(todo), int(options.group))]
        executor.update_parameters(**_executor_parameters(options, dependency))
        try:
            jobs = executor.map_array(run_group, groups, [needs] * len(groups), [repo] * len(groups))
        except Exception as e:  # submitit raises on sbatch's refusal; say which stage
            raise SlurmLauncherError(f"sbatch refused stage {k + 1} ({len(groups)} tasks): {e}") from e
        job_ids = [str(job.job_id) for job in jobs]
        now = datetime.datetime.now().isoformat(timespec="seconds")
        for job_id, group in zip(job_ids, groups):
            for run in group:
                submissions[run.name] = {"job": job_id, "stage": k, "submitted_at": now, "output_dir": run.output_dir}
        os.makedirs(slurm_dir(output), exist_ok=True)
        write_json_atomic(submissions, os.path.join(slurm_dir(output), SUBMISSIONS_FILE))
        submitted.append(StageSubmission(k, job_ids, [[r.name for r in g] for g in groups], dependency))
        last_array = job_ids[0].split("_")[0]
    return Submission(submitted, skipped, deferred)


def wait(job_ids, timeout=None, poll=2.0):
    """Wait until none of `job_ids` (or their arrays) is in squeue; False on timeout."""
    masters = {str(j).split("_")[0] for j in job_ids}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        jobs = scheduler_jobs()
        if jobs is None:
            raise SlurmLauncherError("squeue failed: cannot follow the jobs")
        if not any(job.split("_")[0] in masters for job in jobs):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll)


def report(stages, output, out=print):
    """Print every run's state, the failures with their logs last; returns {state: count}."""
    states = status(stages, output)
    counts = {s: 0 for s in (DONE, RUNNING, FAILED, PENDING)}
    for state in states.values():
        counts[state.state] += 1
        if state.state != FAILED:
            out(state.describe())
    for state in states.values():
        if state.state == FAILED:
            out(state.describe())
    out(", ".join(f"{n} {s}" for s, n in counts.items()))
    return counts


__all__ = ["Run", "SlurmOptions", "Submission", "StageSubmission", "SlurmLauncherError", "add_arguments",
           "options_from_args", "submit", "status", "wait", "report", "run_group", "scheduler_jobs",
           "time_minutes", "sbatch_parameters"]

