"""Where the Slurm launcher keeps what it knows, under `<output>/slurm/`:

    submissions.json        run name -> {job, stage, submitted_at, output_dir} of its latest submission
    logs/<job id>/          submitit's folder: the sbatch script, the task's stdout/stderr (a summary of its runs)
    snapshots/<time>-<id>/  frozen copies of the codebase (--freeze-code), which the jobs run from

Each run's own log is `<its output dir>/log.txt`.
"""
import json
import os
import sys

from ...fileio import write_json_atomic

SLURM_DIR = "slurm"
SUBMISSIONS_FILE = "submissions.json"


def slurm_dir(output):
    return os.path.join(output, SLURM_DIR)


def logs_folder(output):
    """submitit's folder pattern (%j: the job id)."""
    return os.path.join(os.path.abspath(slurm_dir(output)), "logs", "%j")


def snapshots_dir(output):
    return os.path.join(os.path.abspath(slurm_dir(output)), "snapshots")


def task_log(output, job):
    """The stdout/stderr of array task `job` ("123_4"), where submitit writes it."""
    folder = os.path.join(os.path.abspath(slurm_dir(output)), "logs", job)
    path = os.path.join(folder, f"{job}_0_log.out")
    return path if os.path.isfile(path) else folder


def read_submissions(output):
    path = os.path.join(slurm_dir(output), SUBMISSIONS_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        print(f"WARNING: cannot read {path} ({e}): the jobs of earlier submissions are unknown", file=sys.stderr)
        return {}


def write_submissions(output, submissions):
    os.makedirs(slurm_dir(output), exist_ok=True)
    write_json_atomic(submissions, os.path.join(slurm_dir(output), SUBMISSIONS_FILE))
