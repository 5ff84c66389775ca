"""What runs inside a Slurm job: one array task's group of runs, one after the other in one process.

submitit pickles a `GroupTask` with the task's runs and calls it on the node. Each run is skipped when
finished, failed at once when a run it needs is not finished, and isolated from the others (ProcessState
puts back what a run changes of the process; the runs share dataset indexes, vlprompt.data.index_reuse). A
run that fails with a user error leaves the process as sound as before: the next run goes on. After any
other failure (a bug, CUDA, out of memory) the process may be broken, so the task's other runs are not run
here; they are failed, naming why, and the next submission runs them. The task ends with an error that
names every failure (its Slurm state is FAILED; each run's log is its log.txt).

Preemption and time limits: submitit sends the task SIGUSR2 before Slurm stops it (`--signal USR2@90`, and
on preemption where the cluster signals it). `GroupTask.checkpoint` then asks for the same group again and
submitit requeues the task: on its next start, the finished runs are skipped and the interrupted one resumes
from its last checkpoint (resume is exact). A task is requeued after preemption always, after its time
limit at most `--max-timeouts` times.
"""
import gc
import os
import sys
import time

from ..base import LOG_FILE, is_finished

# Set in this process by GroupTask.checkpoint (submitit's signal handler): the task has been requeued and
# must stop now, whatever run it is in.
_REQUEUED = []


class GroupTask:
    """One array task: `runs` with the output directories of the runs they need (`needs`: {name: dir}) and the
    codebase (`repo`). Callable by submitit, and checkpointable (module docstring)."""

    def __init__(self, needs, repo):
        self.needs, self.repo = needs, repo

    def __call__(self, runs):
        return run_group(runs, self.needs, self.repo)

    def checkpoint(self, runs):
        """The same group, submitted again by submitit after a preemption or a time limit: the run directories
        hold where each run is, so nothing else needs saving."""
        import submitit

        _REQUEUED.append(time.time())
        print("[vlprompt] preempted or at its time limit: this task is requeued; finished runs will be skipped and "
              "the interrupted one resumes from its last checkpoint", flush=True)
        return submitit.helpers.DelayedSubmission(self, runs)


def _header(runs, repo):
    import vlprompt

    job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", "?"))
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    return (f"[vlprompt] job {job}{'_' + task if task else ''} (restart {restarts}) on {os.uname().nodename}: "
            f"{len(runs)} runs; vlprompt {vlprompt.__version__} from {os.path.dirname(vlprompt.__file__)}, codebase "
            f"{repo}")


def run_group(runs, needs, repo=None):
    """The task's runs (module docstring). Raises at the end, naming every failure, if any failed; returns a
    summary line per run otherwise."""
    from ...data import index_reuse
    from ..base import ProcessState, run_in_process, run_isolated

    print(_header(runs, repo), flush=True)
    index_reuse.enable()
    state = ProcessState()
    failures, summary, broken = [], [], None
    for run in runs:
        log = os.path.join(run.output_dir, LOG_FILE)
        started = time.time()
        if is_finished(run.output_dir):
            summary.append(f"{run.name}: already finished")
            print(f"[vlprompt] {run.name}: already finished ({run.output_dir})", flush=True)
            continue
        if broken:
            message = f"{run.name}: not run, this process may be broken after {broken}: submit again to run it"
            failures.append(message)
            print(f"[vlprompt] {message}", flush=True)
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

        failure = run_isolated(call, state)
        _free_memory()
        if _REQUEUED:  # submitit's handler stopped the run to requeue the task: stop here too
            print(f"[vlprompt] {run.name}: interrupted for the requeue (it resumes on the task's next start)",
                  flush=True)
            raise SystemExit(-1)
        if failure is not None:
            failures.append(f"{run.name}: failed ({failure}), log: {log}")
            print(f"[vlprompt] {run.name}: FAILED (log: {log})", flush=True)
            if not failure.user_error:
                broken = f"{run.name} failed ({failure})"
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
