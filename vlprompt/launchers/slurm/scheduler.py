"""What the scheduler says about jobs: squeue for the jobs still queued or running, sacct (where the cluster
keeps accounting) for how the others ended (COMPLETED, FAILED, TIMEOUT, PREEMPTED, CANCELLED...).

Job ids are Slurm's: "123" for a single job, "123_4" for task 4 of array 123. A pending array may show as
"123_[4-7%2]"; `state_of` finds a task in such a range.
"""
import re
import subprocess
import time

from .options import SlurmLauncherError

# A job in one of these states will still run (or is running): its runs are in flight.
ACTIVE_JOB_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED",
                     "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED")
# ...and in these its process is on a node (not waiting in the queue).
RUNNING_JOB_STATES = ("RUNNING", "COMPLETING", "CONFIGURING", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT",
                      "STOPPED")
QUERY_TIMEOUT_S = 60

_sacct_works = [None]  # None: not tried yet in this process


def _query(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def parse_job_lines(text):
    """{job id: state} from "<id>|<state>" lines (squeue -o %i|%T, sacct -P -o JobID,State); a state such as
    "CANCELLED by 0" is its first word."""
    jobs = {}
    for line in (text or "").splitlines():
        if "|" in line:
            job, state = line.split("|", 1)
            if job.strip() and state.strip():
                jobs[job.strip()] = state.split()[0]
    return jobs


def squeue_jobs():
    """{job id: state} of the user's jobs in squeue (array tasks one per line); None where squeue cannot be
    asked (no Slurm here, or it fails)."""
    out = _query(["squeue", "--me", "-h", "-r", "-o", "%i|%T"])
    return None if out is None else parse_job_lines(out)


def sacct_jobs(masters):
    """{job id: state} that accounting records for the jobs (and array tasks) of `masters`; None where the
    cluster keeps no accounting (sacct fails: then not asked again by this process)."""
    masters = sorted({str(m) for m in masters if m})
    if not masters or _sacct_works[0] is False:
        return {} if masters == [] else None
    out = _query(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(masters)])
    _sacct_works[0] = out is not None
    return None if out is None else parse_job_lines(out)


def job_states(job_ids):
    """{job id: state} for what squeue lists (all the user's jobs), and, for the masters of `job_ids` that
    squeue no longer lists, what sacct recorded; None when squeue cannot be asked."""
    jobs = squeue_jobs()
    if jobs is None:
        return None
    gone = {master_of(job) for job in job_ids if job and state_of(jobs, job) is None}
    if gone:
        ended = sacct_jobs(gone) or {}
        for job, state in ended.items():
            jobs.setdefault(job, state)
    return jobs


def master_of(job):
    return str(job).split("_")[0]


def state_of(jobs, job):
    """The state `jobs` ({id: state}) gives job `job` ("123_4" or "123"), or None when it is not there."""
    if jobs is None or not job:
        return None
    if job in jobs:
        return jobs[job]
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


def is_active(state):
    return state in ACTIVE_JOB_STATES


def wait_for_jobs(job_ids, timeout=None, poll=30.0):
    """Wait until none of `job_ids` (or their arrays) is queued or running; False on timeout."""
    masters = {master_of(j) for j in job_ids}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        jobs = squeue_jobs()
        if jobs is None:
            raise SlurmLauncherError("squeue failed: cannot follow the jobs")
        if not any(master_of(job) in masters and is_active(state) for job, state in jobs.items()):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll)
