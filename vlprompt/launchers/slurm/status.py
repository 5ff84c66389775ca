"""A Slurm-launched protocol's state: each run's state from its output tree (vlprompt.launchers.base), with
the job of its latest submission and what the scheduler says about that job.

The scheduler is believed over the output tree where the tree cannot know: the run directory's lock may be
invisible from this host (flock is node-local on some cluster file systems), so

- a run whose job is queued or running is in flight, whatever its directory says: `running` when the job
  is on a node (its directory may look failed from here), `pending` while it waits in the queue;
- a run whose job has ended but never wrote its identity failed before it started (a bad option, a missing
  dataset, a run it needs that failed): `failed`, with the task's log that says why;
- a run held by a process on another host whose job has ended is not running there any more: `failed`.
"""
from ..base import DONE, FAILED, PENDING, RUNNING, STATES, run_state
from .files import read_submissions, task_log
from .scheduler import RUNNING_JOB_STATES, is_active, job_states, state_of


def submitted_jobs(output):
    """What the scheduler says about the jobs submissions.json names ({job: state}, {} when it names none; None
    when the scheduler cannot be asked)."""
    known = [(entry or {}).get("job") for entry in read_submissions(output).values()]
    known = [job for job in known if job]
    return job_states(known) if known else {}


def status(stages, output, jobs="ask"):
    """{run name: RunState} (done / running / failed / other / pending), with the job id of each run's latest
    submission and the scheduler's state of that job where it can be asked. jobs: {job: state} (default:
    ask squeue and sacct, submitted_jobs; None: do not ask)."""
    submissions = read_submissions(output)
    if jobs == "ask":
        jobs = submitted_jobs(output) if submissions else None
    states = {}
    for stage in stages:
        for run in stage:
            state = run_state(run)
            job = (submissions.get(run.name) or {}).get("job")
            if job:
                state.job = job
                state.scheduler = state_of(jobs, job) if jobs is not None else None
                if jobs is not None:
                    _believe_the_scheduler(state, output)
            states[run.name] = state
    return states


def _believe_the_scheduler(state, output):
    active = is_active(state.scheduler)
    if active and state.state == FAILED:
        state.state = RUNNING if state.scheduler in RUNNING_JOB_STATES else PENDING
    elif not active and state.state == PENDING:
        # its job has ended, and the run never wrote its identity: the task's log says why
        state.state, state.log = FAILED, task_log(output, state.job)
    elif not active and state.state == RUNNING and state.holder is not None and not state.holder.on_this_host:
        state.state = FAILED  # the record of a process on a node its job has left


def in_flight(state):
    """Left to finish without a new submission: its directory is held, or its latest job is queued or running."""
    return state.state == RUNNING or (state.state != DONE and is_active(state.scheduler))


def counts_of(states):
    counts = dict.fromkeys(STATES, 0)
    for state in states.values():
        counts[state.state] += 1
    return counts


def report(stages, output, out=print, states=None):
    """Print every run's state, the failures with their logs last; returns {state: count}."""
    states = status(stages, output) if states is None else states
    for state in states.values():
        if state.state != FAILED:
            out(state.describe())
    for state in states.values():
        if state.state == FAILED:
            out(state.describe())
    counts = counts_of(states)
    out(", ".join(f"{n} {s}" for s, n in counts.items()))
    return counts
