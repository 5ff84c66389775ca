"""Wall time of a whole protocol run three ways: one process per run (the bash scripts), long-lived local
workers (one slot), and several jobs at once (several slots per GPU; on the CPU, several CPU slots).

    python benchmarks/bench_protocol.py                 # CPU: tiny CLIP, 3 datasets x 3 seeds, 32 px, 1 epoch
    python benchmarks/bench_protocol.py --full --jobs-per-gpu 3   # GPU: full-size random ViT-B/16, 224 px

The protocol is MaPLe base-to-new (train on base, then test on new) on generated data, so 2 x datasets x
seeds runs. Printed: wall time per run and in total, start-up time per process (for the scripts: a fresh
interpreter importing train.py, its plugins and torch, plus reading and building CLIP; for the workers:
spawn until ready), and on a GPU the mean utilisation sampled by nvidia-smi.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = {"caltech101": "Caltech101", "oxford_pets": "OxfordPets", "eurosat": "EuroSAT", "dtd": "DescribableTextures",
            "ucf101": "UCF101"}


def make_clip(path, full):
    import torch

    if not full:
        from vlprompt.testing.tiny_clip import save_tiny_clip

        return save_tiny_clip(path, arch="vit")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import VIT_B16
    from vlprompt.clip_loader import clip

    torch.manual_seed(0)
    model = clip.model.CLIP(**VIT_B16)
    clip.model.convert_weights(model)  # fp16, as released
    torch.save(model.state_dict(), path)
    return path


class GpuSampler:
    """Mean GPU utilisation (nvidia-smi, every 0.5 s) while active; None without a GPU."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                text = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                      capture_output=True, text=True, timeout=5).stdout
                self.samples += [float(v) for v in text.split()]
            except (OSError, subprocess.SubprocessError, ValueError):
                return
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def mean(self):
        return statistics.mean(self.samples) if self.samples else None


def script_startup(clip_path, repeats=2):
    """Seconds a fresh train.py process spends before its run starts: interpreter, imports, plugins, CLIP."""
    code = ("import time; t = time.time(); import torch; from vlprompt.plugins import load_codebase; "
            f"load_codebase({REPO!r})\n"
            f"from vlprompt.clip_loader import load_clip; load_clip({clip_path!r}); print(time.time() - t)")
    times = []
    for _ in range(repeats):
        start = time.time()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=REPO)
        times.append(time.time() - start)
    return statistics.mean(times)


def by_scripts(stages, data, output, opts, env):
    """One bash script call (one python train.py) per run, one after the other, as the scripts run."""
    times = {}
    full_env = dict(os.environ, DATA=data, OUTPUT=output, PYTHON=sys.executable, VARIANT="", **env)
    for stage in stages:
        for run in stage:
            dataset, seed, phase = run.name.rsplit("-", 2)
            script = os.path.join(REPO, "scripts", "maple", f"base2new_{phase}.sh")
            start = time.time()
            subprocess.run(["bash", script, dataset, seed[len("seed"):], *opts], env=full_env, check=True,
                           capture_output=True)
            times[run.name] = time.time() - start
    return times


def by_workers(stages, slots, log_dir):
    from vlprompt.launchers.local import launch

    timings = {}
    failures = launch(stages, slots=slots, log_dir=log_dir, repo=REPO, out=lambda line: None, timings=timings)
    if failures:
        raise SystemExit(f"runs failed: {failures}")
    return timings["runs"], timings["startup"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size random ViT-B/16, 224 px, on the GPU")
    parser.add_argument("--datasets", type=int, default=3, help=f"how many of {list(DATASETS)} (default 3)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--jobs-per-gpu", type=int, default=2, help="slots per GPU (on the CPU: CPU slots) of way 3")
    parser.add_argument("--ways", default="scripts,workers,jobs", help="which of scripts,workers,jobs to run")
    parser.add_argument("--workdir", default=None, help="keep the data and outputs here (default: a temp folder)")
    parser.add_argument("--json", default="", help="write the rows here")
    args = parser.parse_args(argv)

    from vlprompt.protocols import plan
    from vlprompt.runner import gpu_slots
    from vlprompt.testing.fake_data import make_dataset

    work = args.workdir or tempfile.mkdtemp(prefix="bench-protocol-")
    data = os.path.join(work, "data")
    datasets = list(DATASETS)[:args.datasets]
    for d in datasets:
        if not os.path.isdir(os.path.join(data, d)):
            make_dataset(DATASETS[d], data)
    clip_path = make_clip(os.path.join(work, "clip-full.pt" if args.full else "clip-tiny.pt"), args.full)
    opts = ["MODEL.BACKBONE.NAME", clip_path, "OPTIM.MAX_EPOCH", str(args.epochs), "TRAIN.PRINT_FREQ", "1000"]
    if args.full:
        opts += ["USE_CUDA", "True", "DATALOADER.NUM_WORKERS", "4"]
        gpus = gpu_slots("auto", 1)
        if gpus == [""]:
            raise SystemExit("--full needs a GPU")
    else:
        opts += ["INPUT.SIZE", "(32, 32)", "USE_CUDA", "False", "DATALOADER.NUM_WORKERS", "0"]
        gpus = [""]
    gpu_ids = sorted(set(gpus))
    one_slot = [gpu_ids[0]] if args.full else [""]
    several = [g for g in gpu_ids for _ in range(args.jobs_per_gpu)]
    ways = args.ways.split(",")

    def stages_in(folder):
        return plan("base2new", "maple", data, os.path.join(work, folder), datasets=datasets,
                    seeds=range(1, args.seeds + 1), opts=opts, variant="", repo=REPO)

    n_runs = sum(len(s) for s in stages_in("x"))
    device = f"GPU(s) {gpu_ids}" if args.full else f"CPU ({os.cpu_count()} cores)"
    print(f"MaPLe base-to-new, {len(datasets)} datasets x {args.seeds} seeds = {n_runs} runs, {args.epochs} epoch(s), "
          f"{'full-size random ViT-B/16' if args.full else 'tiny CLIP, 32 px'}, on {device}\n")
    report = []
    if "scripts" in ways:
        startup = script_startup(clip_path)
        env = {"CUDA_VISIBLE_DEVICES": one_slot[0]} if args.full else {}
        with GpuSampler() as gpu:
            start = time.time()
            times = by_scripts(stages_in("scripts"), data, os.path.join(work, "scripts"), opts, env)
            report.append(("one process per run (bash scripts)", times, time.time() - start, [startup] * n_runs,
                           gpu.mean()))
    for way, slots, label in (("workers", one_slot, "long-lived workers, 1 slot"),
                              ("jobs", several, f"long-lived workers, {len(several)} slots "
                                                f"({args.jobs_per_gpu} per {'GPU' if args.full else 'CPU'})")):
        if way not in ways:
            continue
        with GpuSampler() as gpu:
            start = time.time()
            times, startups = by_workers(stages_in(way), slots, os.path.join(work, way, "runner-logs"))
            report.append((label, times, time.time() - start, startups, gpu.mean()))

    for label, times, total, startups, util in report:
        print(f"== {label}")
        for name, seconds in times.items():
            print(f"   {name:28s} {seconds:7.2f} s")
        print(f"   total wall time {total:.1f} s; mean per run {statistics.mean(times.values()):.2f} s; "
              f"start-up per process {statistics.mean(startups):.2f} s x {len(startups)} processes"
              + (f"; mean GPU utilisation {util:.0f}%" if util is not None else ""))
    if len(report) > 1:
        base = report[0][2]
        print("\n" + "\n".join(f"{label}: {total:.1f} s ({base / total:.2f}x)" for label, _, total, _, _ in report))
    print(f"(data and outputs in {work})")
    rows = [{"what": label, "runs": len(times), "total_s": round(total, 1),
             "mean_run_s": round(statistics.mean(times.values()), 2),
             "startup_s_per_process": round(statistics.mean(startups), 2), "processes": len(startups),
             "gpu_util_pct": round(util) if util is not None else None,
             "speedup_vs_first": round(report[0][2] / total, 2)} for label, times, total, startups, util in report]
    if args.json:
        import torch

        with open(args.json, "w") as f:
            json.dump({"device": device, "gpu": torch.cuda.get_device_name(0) if args.full else None,
                       "torch": torch.__version__, "protocol": "MaPLe base-to-new", "datasets": datasets,
                       "seeds": args.seeds, "epochs": args.epochs, "full": args.full, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
