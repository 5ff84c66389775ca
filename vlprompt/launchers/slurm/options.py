"""What a Slurm submission asks for: `SlurmOptions`, the command-line options that fill them, and their
translation into submitit's SlurmExecutor parameters (sbatch's options)."""
import dataclasses
import shlex

from ...errors import ConfigValueError, UserError
from ..durations import duration_minutes

DEFAULT_TIME_MIN = 120
DEFAULT_GPUS = 1
DEFAULT_MAX_TIMEOUTS = 3
DEFAULT_POLL_S = 30.0         # submitit asks the scheduler no more often either: spare the controller


class SlurmLauncherError(UserError):
    """A Slurm submission that cannot be made (bad option, submitit missing, sbatch refused)."""


@dataclasses.dataclass
class SlurmOptions:
    partition: str = None
    time: object = DEFAULT_TIME_MIN       # minutes, or Slurm's formats: "MM", "HH:MM:SS", "D-HH[:MM[:SS]]"
    gpus_per_job: int = DEFAULT_GPUS      # 0: a CPU job, said explicitly
    cpus_per_job: int = None
    mem: str = None                       # as sbatch --mem: "32G", "16000M"
    account: str = None
    array_parallelism: int = None         # at most this many tasks of an array at once (the array's %N)
    group: int = 1                        # runs per array task
    sbatch: list = dataclasses.field(default_factory=list)  # extra "#SBATCH" lines: "--qos=high", "constraint=a100"
    setup: list = dataclasses.field(default_factory=list)   # shell lines run before the task (module load ...)
    job_name: str = "vlprompt"
    max_timeouts: int = DEFAULT_MAX_TIMEOUTS  # times a task that reaches its time limit is requeued
    freeze: bool = False                  # run the jobs from a copy of the codebase made at submission


def add_arguments(parser):
    """The launcher's command-line options (for `vlprompt run ... --launcher slurm`). --sbatch and --setup take
    values that start with "-" ("--qos=normal"): vlprompt.cli joins them to their option before argparse."""
    g = parser.add_argument_group("Slurm launcher (--launcher slurm)")
    g.add_argument("--partition", default=None, help="the partition (sbatch --partition)")
    g.add_argument("--time", default=str(DEFAULT_TIME_MIN),
                   help=f"time limit of each job: minutes or HH:MM:SS or D-HH:MM:SS (default {DEFAULT_TIME_MIN} min); "
                   "a job that reaches it is requeued and its run resumes (--max-timeouts)")
    g.add_argument("--gpus-per-job", type=int, default=DEFAULT_GPUS,
                   help=f"GPUs of each job (default {DEFAULT_GPUS}; 0 for CPU jobs)")
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
    g.add_argument("--max-timeouts", type=int, default=DEFAULT_MAX_TIMEOUTS,
                   help=f"requeue a task that reaches its time limit at most this many times (default "
                   f"{DEFAULT_MAX_TIMEOUTS}); a preempted task is always requeued")
    g.add_argument("--freeze-code", action="store_true",
                   help="run the jobs from a copy of the codebase made now (OUTPUT/slurm/snapshots/), so that "
                   "editing the checkout does not change queued jobs")
    g.add_argument("--wait", action="store_true",
                   help="wait until every stage has ended (live status), print the table, exit 1 if a run failed")
    g.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_S, metavar="SECONDS",
                   help=f"how often --wait asks the scheduler (default {DEFAULT_POLL_S:.0f} s; real clusters: 30 or "
                   "more)")
    return g


def options_from_args(args):
    return SlurmOptions(partition=args.partition, time=args.time, gpus_per_job=args.gpus_per_job,
                        cpus_per_job=args.cpus_per_job, mem=args.mem, account=args.account,
                        array_parallelism=args.array_parallelism, group=args.group, sbatch=list(args.sbatch),
                        setup=list(args.setup), max_timeouts=args.max_timeouts, freeze=args.freeze_code)


def check_options(options):
    """Refuse a bad option before anything is submitted (one line naming it)."""
    time_minutes(options.time)
    for name, value, least in (("--group", options.group, 1), ("--gpus-per-job", options.gpus_per_job, 0),
                               ("--max-timeouts", options.max_timeouts, 0)):
        if int(value) < least:
            raise SlurmLauncherError(f"{name} {value}: must be at least {least}")
    sbatch_parameters(options.sbatch)


def time_minutes(value):
    """Slurm's time formats (or a number of minutes) as whole minutes (rounded up)."""
    try:
        return duration_minutes(value, "--time")
    except ConfigValueError as e:
        raise SlurmLauncherError(str(e)) from None


def poll_seconds(value):
    """--poll-interval: positive seconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0
    if seconds <= 0:
        raise SlurmLauncherError(f"--poll-interval {value!r}: give a positive number of seconds (default "
                                 f"{DEFAULT_POLL_S:.0f}; real clusters: 30 or more)")
    return seconds


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
        if len(tokens) > 2 or not tokens[0].lstrip("-") or (len(tokens) == 2 and "=" in tokens[0]):
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


def executor_parameters(options, dependency, sbatch=None):
    """submitit's SlurmExecutor.update_parameters(...) for one stage's array. sbatch: options the launcher itself
    needs ({name: value}, e.g. the frozen codebase's chdir), over the user's --sbatch lines."""
    params = {"job_name": options.job_name, "time": time_minutes(options.time), "nodes": 1, "ntasks_per_node": 1,
              "stderr_to_stdout": True}
    for option, (parameter, convert) in EXECUTOR_PARAMETERS.items():
        value = getattr(options, option)
        if value:
            params[parameter] = convert(value)
    extra = {**sbatch_parameters(options.sbatch), **(sbatch or {})}
    if dependency:
        params["dependency"] = dependency
    if extra:
        params["additional_parameters"] = extra
    return params


def describe_resources(options):
    """What each job asks for, for the submission's summary: the GPU count is never left unsaid."""
    gpus = int(options.gpus_per_job)
    parts = [f"{gpus} GPU{'s' if gpus != 1 else ''} per job" if gpus else "CPU jobs (--gpus-per-job 0)",
             f"time limit {time_minutes(options.time)} min"]
    if options.partition:
        parts.append(f"partition {options.partition}")
    return ", ".join(parts)


__all__ = ["SlurmOptions", "SlurmLauncherError", "add_arguments", "options_from_args", "check_options",
           "time_minutes", "poll_seconds", "sbatch_parameters", "executor_parameters", "describe_resources"]
