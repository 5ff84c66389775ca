"""What every launcher shares: the `Run` (one train.py invocation), its state from the output tree, and
running one in the current process.

A run's state is read from its output directory only (so it survives the launcher, the scheduler and
the machine):

    done     result.json records the same identity fingerprint as identity.json (the run finished, and
             finished as what the directory now holds)
    running  a live process holds the directory's lock (vlprompt.run_dir.lock_holder: the flock, or the
             lock record of another host with a live heartbeat); `holder` names its PID and host
    failed   train.py started it (identity.json exists) but it has no finished result and nobody holds
             the lock: it crashed, was killed, timed out or was cancelled; its log is `log.txt`
    other    the directory holds another run: its identity records other options, trainer, config, seed or
             kind than this run's command line (two variants planned into one tree with VARIANT=)
    pending  nothing has started it yet

A launcher that knows more (the Slurm launcher asks the scheduler about the run's job) refines this.
This module imports neither torch nor CLIP (`vlprompt run --status` reads states without them).
"""
import dataclasses
import os
import sys

from ..protocols import resolve_spec
from ..run_dir import is_finished, lock_holder
from ..run_identity import IDENTITY_FILE
from ..run_spec import Run  # noqa: F401 (the launchers' unit of work, with the states below)

RESULT_FILE = "result.json"
LOG_FILE = "log.txt"

DONE, RUNNING, FAILED, OTHER, PENDING = "done", "running", "failed", "other", "pending"
STATES = (DONE, RUNNING, FAILED, OTHER, PENDING)


@dataclasses.dataclass
class RunState:
    name: str
    state: str                  # one of STATES
    output_dir: str
    log: str = None             # log.txt of a failed (or running) run
    holder: object = None       # the LockHolder (PID, host) of a running run, where its lock shows it
    job: str = None             # the scheduler's job id, where a launcher knows it
    scheduler: str = None       # what the scheduler says about that job (e.g. PENDING, RUNNING), or None
    other: str = None           # what the directory's run differs in (state OTHER)

    @property
    def pid(self):
        return self.holder.pid if self.holder is not None else None

    def describe(self):
        text = f"{self.state:8s} {self.name}"
        if self.state == RUNNING and self.holder is not None:
            text += f"  ({self.holder})"
        if self.job:
            text += f"  [job {self.job}{': ' + self.scheduler if self.scheduler else ''}]"
        if self.state == FAILED:
            text += f"  log: {self.log}"
        if self.state == OTHER:
            text += f"  {self.output_dir} holds another run ({self.other}): give this one its own folder with " \
                    "VARIANT=<name> (unset: named from the options) or OUTPUT=<another folder>"
        return text


def other_run(run, identity):
    """What the identity a directory records differs in from `run` ("" if nothing)."""
    spec = run.spec
    expected = {"trainer": spec.trainer, "config": os.path.splitext(os.path.basename(spec.config_file))[0] or None,
                "kind": "eval" if spec.eval_only else "train", "overrides": [str(o) for o in spec.opts]}
    if spec.seed is not None and spec.seed != -1:
        expected["seed"] = spec.seed
    differ = [f"{key}: {identity.get(key)!r}" for key, value in expected.items()
              if key in identity and identity.get(key) != value]
    return "; ".join(differ)


def run_state(run, launcher_log=None):
    """The RunState of `run` from its output directory (module docstring). launcher_log: the log a launcher
    wrote for the run; if it exists, a run that never got as far as its identity.json (a bad option, a
    missing dataset) was started all the same, and is failed with that log, not pending."""
    out = run.output_dir
    log = os.path.join(out, LOG_FILE)
    recorded = _read_json(os.path.join(out, IDENTITY_FILE))
    differ = other_run(run, recorded) if isinstance(recorded, dict) else ""
    holder = lock_holder(out)
    if differ and holder is None:
        return RunState(run.name, OTHER, out, log=log, other=differ)
    if is_finished(out):
        return RunState(run.name, DONE, out)
    if holder is not None:
        return RunState(run.name, RUNNING, out, log=log, holder=holder)
    if recorded is not None:
        return RunState(run.name, FAILED, out, log=log)
    if launcher_log and os.path.isfile(launcher_log):
        return RunState(run.name, FAILED, out, log=launcher_log)
    return RunState(run.name, PENDING, out)


def _read_json(path):
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------- running a run
class ProcessState:
    """What one run may change of a process that the next run must not see."""

    def __init__(self):
        import warnings

        import torch

        self.environ, self.cwd, self.argv = dict(os.environ), os.getcwd(), list(sys.argv)
        self.warning_filters = list(warnings.filters)
        self.torch = {
            "dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled(), "threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn": {k: getattr(torch.backends.cudnn, k) for k in ("benchmark", "deterministic", "enabled",
                                                                    "allow_tf32")},
            "cuda_matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        }

    def restore(self):
        import warnings

        import torch

        from ..engine import close_logger
        from ..validation import RUN_WARNINGS

        close_logger()
        RUN_WARNINGS.clear()
        os.environ.clear()
        os.environ.update(self.environ)
        os.chdir(self.cwd)
        sys.argv[:] = self.argv
        warnings.filters[:] = self.warning_filters
        t = self.torch
        torch.set_default_dtype(t["dtype"])
        torch.set_grad_enabled(t["grad"])
        if torch.get_num_threads() != t["threads"]:
            torch.set_num_threads(t["threads"])
        torch.use_deterministic_algorithms(t["deterministic"])
        torch.set_float32_matmul_precision(t["matmul_precision"])
        for key, value in t["cudnn"].items():
            setattr(torch.backends.cudnn, key, value)
        torch.backends.cuda.matmul.allow_tf32 = t["cuda_matmul_tf32"]


@dataclasses.dataclass
class RunFailure:
    """Why a run failed: its one-line message, and whether it was a user error (a bad option, missing data: the
    process is as sound as before) or anything else (a bug, CUDA, out of memory: the process may be broken,
    so a long-lived worker is replaced before its next run). busy: the run directory is held by another live
    process (vlprompt.run_dir.RunInUse), whose LockHolder is `holder`."""
    message: str
    user_error: bool = False
    holder: object = None

    @property
    def busy(self):
        return self.holder is not None

    def __str__(self):
        return self.message


def run_isolated(call, state):
    """call() as one of the many runs of a long-lived process: a failure is reported, not raised (a user
    error as its one line, anything else with its traceback, both on stderr) and returned as a RunFailure,
    None on success; the process state is put back either way (ProcessState)."""
    import traceback

    from ..errors import UserError, report_user_error
    from ..run_dir import RunInUse

    try:
        call()
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 (a failed run must not stop the others)
        if isinstance(e, UserError):
            report_user_error(e)
        elif not isinstance(e, SystemExit):
            traceback.print_exc()
        message = f"exit status {e.code}" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
        return RunFailure(message, user_error=isinstance(e, UserError),
                          holder=e.holder if isinstance(e, RunInUse) else None)
    finally:
        state.restore()


def codebase_of(repo=None):
    """The codebase whose trainers/, datasets/ and configs/ the runs use (vlprompt.plugins.find_codebase)."""
    from ..plugins import find_codebase

    return find_codebase("trainers", repo, what="the codebase's trainers/ and datasets/")


def run_in_process(run, repo=None, way_out=None):
    """Run `run` in this process through the library's entry point (vlprompt.entry.execute), its test's
    trained epoch filled in; returns its RunResult, raises on failure (a user error or a crash)."""
    from ..entry import execute

    return execute(resolve_spec(run.spec), codebase=codebase_of(repo), way_out=way_out)
