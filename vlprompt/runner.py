"""Run a whole protocol: every dataset x seed through the method's scripts, on all local GPUs, then the table.

    vlprompt run base2new maple                            # 11 datasets x seeds 1 2 3, then the table
    vlprompt run base2new cocoop --datasets caltech101 dtd --seeds 1 --gpus 0,1 --jobs-per-gpu 2
    vlprompt run xd maple                                  # ImageNet training, then the 14 targets
    vlprompt run dg metaprompt --datasets pacs --shots 5   # every held-out domain x seed
    vlprompt run base2new maple -- TRAINER.MAPLE.PREC amp  # options after -- go to every run

A job is one script call (base-to-new: train on base, then test on new, in one slot). Jobs go to the GPUs
(CUDA_VISIBLE_DEVICES set per job), JOBS_PER_GPU at a time on each; without a GPU they run one at a
time on the CPU. The scripts skip finished runs and resume interrupted ones, so running the command
again picks up where it stopped. Each job's output goes to OUTPUT/runner-logs/; failures are listed at
the end (exit status 1) after the other jobs have run.
"""
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .paper_numbers import BASE2NEW_DATASETS

# script folder -> registered trainer (for the table)
METHODS = {"cocoop": "CoCoOp", "maple": "MaPLe", "independent-vlp": "IVLP", "language-prompting": "IVLP",
           "vpt": "VPT", "metaprompt": "MetaPrompt", "copl": "CoPL"}
DATASET_CONFIGS = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                   "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]
XD_TARGETS = DATASET_CONFIGS[1:] + ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
DG_DOMAINS = {"pacs": ["art_painting", "cartoon", "photo", "sketch"], "vlcs": ["caltech", "labelme", "pascal", "sun"],
              "office_home": ["art", "clipart", "product", "real_world"],
              "domainnet": ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]}
assert len(DATASET_CONFIGS) == len(BASE2NEW_DATASETS)


class Job:
    def __init__(self, name, steps):
        self.name = name
        self.steps = steps  # [(script, args)], run in order in one slot


def scripts_folder(method, repo=None):
    """The method's scripts/<method> folder of the codebase (vlprompt.plugins: --repo, $VLPROMPT_REPO, cwd)."""
    from .plugins import find_codebase

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return os.path.join(find_codebase(os.path.join("scripts", method), repo, "vlprompt's scripts/ folder"),
                        "scripts", method)


def plan(protocol, method, datasets=None, seeds=(1, 2, 3), shots=None, opts=(), repo=None):
    """The job list of a protocol, as stages: a stage's jobs run in parallel, stages one after another."""
    folder = scripts_folder(method, repo)
    script = lambda name: os.path.join(folder, name)  # noqa: E731
    opts = list(opts)
    if protocol == "base2new":
        return [[Job(f"{d}-seed{s}", [(script("base2new_train.sh"), [d, s, *opts]),
                                      (script("base2new_test.sh"), [d, s, *opts])])
                 for d in (datasets or DATASET_CONFIGS) for s in seeds]]
    if protocol == "xd":
        if method == "metaprompt":
            raise ValueError("MetaPrompt has no cross-dataset protocol; use dg")
        # CoCoOp's xd_train.sh takes SEED only (its original's arguments); the others DATASET SEED.
        train_args = (lambda s: [s, *opts]) if method == "cocoop" else (lambda s: ["imagenet", s, *opts])
        return [[Job(f"imagenet-seed{s}", [(script("xd_train.sh"), train_args(s))]) for s in seeds],
                [Job(f"{d}-seed{s}", [(script("xd_test.sh"), [d, s, *opts])])
                 for d in (datasets or XD_TARGETS) for s in seeds]]
    if protocol == "dg":
        if method != "metaprompt":
            raise ValueError("the leave-one-domain-out DG protocol has scripts for metaprompt only")
        k = shots or 5
        return [[Job(f"{d}-{t}-seed{s}", [(script("dg.sh"), [d, t, s, k, *opts])])
                 for d in (datasets or list(DG_DOMAINS)) for t in DG_DOMAINS[d] for s in seeds]]
    raise ValueError(f"unknown protocol {protocol!r}; choose base2new, xd or dg")


def gpu_slots(gpus, jobs_per_gpu):
    """CUDA_VISIBLE_DEVICES values, one per concurrent job ("" = the CPU)."""
    if gpus in (None, "auto"):
        try:
            import torch

            ids = [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        except Exception:
            ids = []
    elif gpus in ("none", "cpu"):
        ids = []
    else:
        ids = [g.strip() for g in str(gpus).split(",") if g.strip()]
    if not ids:
        return [""]
    return [gpu for gpu in ids for _ in range(max(1, jobs_per_gpu))]


def run_stage(jobs, slots, env, log_dir, out=print):
    """Run jobs, each in a free slot; returns the names of the failed ones, in the order of `jobs` (not the
    order in which they happened to fail)."""
    free = queue.Queue()
    for slot in slots:
        free.put(slot)
    failed, lock = [], threading.Lock()

    def work(job):
        slot = free.get()
        try:
            job_env = dict(env)
            if slot:
                job_env["CUDA_VISIBLE_DEVICES"] = slot
            log = os.path.join(log_dir, f"{job.name}.log")
            start = time.time()
            with open(log, "a") as f:
                for script, args in job.steps:
                    f.write(f"$ bash {script} {' '.join(map(str, args))}\n")
                    f.flush()
                    code = subprocess.call(["bash", script, *map(str, args)], env=job_env, stdout=f,
                                           stderr=subprocess.STDOUT)
                    if code != 0:
                        with lock:
                            failed.append(job.name)
                        out(f"  FAILED {job.name} (exit {code}; log: {log})")
                        return
            out(f"  done   {job.name} [{'GPU ' + slot if slot else 'CPU'}, {time.time() - start:.0f} s]")
        finally:
            free.put(slot)

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        list(pool.map(work, jobs))
    order = {job.name: i for i, job in enumerate(jobs)}
    return sorted(failed, key=order.__getitem__)


def run_protocol(protocol, method, output, data, datasets=None, seeds=(1, 2, 3), shots=None, gpus="auto",
                 jobs_per_gpu=1, opts=(), out=print, repo=None):
    """Run the protocol's stages, then print and write its table. Returns the failed job names."""
    stages = plan(protocol, method, datasets, seeds, shots, opts, repo)
    slots = gpu_slots(gpus, jobs_per_gpu)
    log_dir = os.path.join(output, "runner-logs")
    os.makedirs(log_dir, exist_ok=True)
    env = dict(os.environ, DATA=data, OUTPUT=os.path.abspath(output), PYTHON=os.environ.get("PYTHON", sys.executable))
    where = f"GPUs {sorted(set(slots))} x {jobs_per_gpu}" if slots != [""] else "the CPU, one job at a time"
    out(f"{protocol} / {method}: {sum(len(s) for s in stages)} jobs on {where}; logs in {log_dir}")
    failed = []
    for stage in stages:
        failed += run_stage(stage, slots, env, log_dir, out)
    from .results import build

    build(protocol, output, trainer=METHODS[method], out=out)
    if failed:
        out(f"{len(failed)} jobs failed: {', '.join(failed)}. Run the same command again to retry them "
            "(finished runs are skipped).")
    return failed
