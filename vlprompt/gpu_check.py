"""One command for every GPU figure: `python -m vlprompt.gpu_check` (run from the repository root).

On one CUDA GPU, in under 8 minutes, it runs and records, side by side in one process tree:

  trainers        every registered trainer (tiny CLIP, generated data): a few training steps and an
                  evaluation in fp16, fp16 + CUDA graphs, amp and amp + CUDA graphs, each against the same
                  steps in fp32 from the same seed and batches (first loss, evaluation logits on the fp32
                  prompts, direction of the prompt update), graphs against eager, ms per step. (MetaPrompt's
                  step does not go through PromptTrainer.train_forward: its graph rows run eagerly.)
  bench_methods   benchmarks/bench_methods.py: model-only training and evaluation throughput of CoOp,
                  CoCoOp and MaPLe on a random-weight ViT-B/16 (fp16), with and without CUDA graphs, and the
                  image- and text-encoder floors
  bench_eval      benchmarks/bench_eval.py --full --decoder torchvision: evaluation end to end from JPEG
                  files, from a cold and a warm test-image cache (its CUDA lookup table and pinned memory),
                  and the cache built with the device JPEG decoder (decode_jpeg on the GPU)
  bench_protocol  benchmarks/bench_protocol.py --full: a MaPLe base-to-new protocol as one process per run
                  (the bash scripts), as long-lived workers, and several jobs per GPU
  original        with --original PATH (a checkout of the original code with Dassl importable):
                  benchmarks/bench_original.py times the original code's training steps and evaluation on
                  the same model-only settings as bench_methods, in the same run

and writes `gpu_check.json` and `gpu_check.md` (one table per section, with the GPU's name) to --out.
A section that fails or runs past its time limit is recorded as such; the others still run. The exit
status is 0 only if every comparison passed and every section ran.

Without a GPU it stops with one line. `--device cpu` exists for the test suite only: with the test-only
switch VLPROMPT_TEST_ONLY_CPU_HALF=1 (vlprompt/precision.py) the trainer comparisons run on the CPU in
real float16 (CUDA graphs then never capture).
"""
import argparse
import contextlib
import datetime
import glob
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

from . import __version__
from .errors import UserError, run_main
from .fileio import write_json_atomic
from .precision import TEST_ONLY_CPU_HALF, cpu_half_enabled

TEST_COMMAND = "python -m pytest -q -n 2 --dist loadfile"  # the README's and .ci/run's
SECTIONS = ("trainers", "bench_methods", "bench_eval", "bench_protocol", "original")
# (PREC, CUDA graphs) of the trainer comparisons; the first is the reference.
VARIANTS = (("fp32", False), ("fp16", False), ("fp16", True), ("amp", False), ("amp", True))
STEPS = 4  # training steps per variant (batch 4), from the same seed and the same batches
# fp16 / amp against fp32, from the same seed on the same batches:
# - the evaluation: this precision's logits with the fp32 steps' prompts loaded, relative to the largest
#   |logit| (on the CPU, tests/test_half_precision_cpu.py, at most 0.6%), and the first step's loss;
# - the training step: the direction of the prompt update after the steps (cosine with fp32's). Judged for
#   fp16 only, and loosely: fp16 updates the prompts in place in float16 with no master copy (as the
#   originals), so an update below half a float16 step of the value it changes is lost; at the configs'
#   learning rates that is a fair share of them (on the CPU: cosine 0.80 for CoCoOp, 0.83 for CoPL, 1.00
#   for the others). amp's GradScaler starts at a scale of 65536 and skips the steps whose scaled
#   gradients overflow float16 (as in the originals), so its first updates are missing by design: not judged.
EVAL_TOLERANCE = 0.02
UPDATE_COSINE = 0.5
# CUDA-graph replay vs eager at the same precision: the same kernels, but fp16's fused attention backward
# is not deterministic (tests/test_cuda_graphs.py uses 2e-3 on the prompts).
GRAPH_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3, "amp": 5e-3}
# Time limits (seconds) that keep the whole check under 8 minutes on one GPU, and each benchmark's command
# (relative to the repository root), sized down from the benchmarks' defaults to fit. A section past its
# limit is stopped and recorded as such. (Chosen from the H100 figures in benchmarks/results/; the check
# itself has not run on a GPU yet.)
TRAINERS_TIME_LIMIT_S = 110  # checked between trainers: the ones left are recorded as not run
BENCHMARKS = {
    "bench_methods": (["benchmarks/bench_methods.py", "--steps", "20", "--warmup", "3", "--eval-images", "1000",
                       "--jpegs", "1000"], 90),
    "bench_eval": (["benchmarks/bench_eval.py", "--full", "--device", "cuda", "--decoder", "torchvision",
                    "--jpegs", "2000", "--repeats", "1"], 100),
    "bench_protocol": (["benchmarks/bench_protocol.py", "--full", "--datasets", "1", "--seeds", "1",
                        "--jobs-per-gpu", "2"], 110),
    "original": (["benchmarks/bench_original.py", "--steps", "20", "--warmup", "3", "--eval-images", "200"], 60),
}


class GpuCheckError(UserError):
    pass


# ------------------------------------------------------------------------------ trainer comparisons
def trainer_config(repo, name):
    """The trainer's ViT-B/16 config file (the first by name), or its first, or None."""
    found = sorted(glob.glob(os.path.join(glob.escape(repo), "configs", "trainers", name, "*.yaml")))
    vit = [f for f in found if os.path.basename(f).startswith("vit_b16")]
    return (vit or found or [None])[0]


def needs_domains(trainer_cls):
    """A trainer whose training splits by domain (MetaPrompt's DG mode) trains on the generated PACS."""
    return getattr(trainer_cls, "SPLIT", None) == "domain"


def make_fixtures(workdir):
    """The tiny CLIP and the generated datasets the comparisons train on (made once per workdir)."""
    from .testing.fake_data import make_caltech101
    from .testing.fake_dg_data import make_pacs
    from .testing.tiny_clip import save_tiny_clip

    paths = {"clip": os.path.join(workdir, "tiny-vit.pt"), "caltech": os.path.join(workdir, "caltech"),
             "pacs": os.path.join(workdir, "pacs")}
    if not os.path.exists(paths["clip"]):
        save_tiny_clip(paths["clip"], arch="vit")
    for key, make in (("caltech", make_caltech101), ("pacs", make_pacs)):
        if not os.path.isdir(paths[key]):
            os.makedirs(paths[key])
            make(paths[key])
    return paths


def trainer_argv(repo, name, trainer_cls, prec, graphs, device, fixtures, out):
    config = trainer_config(repo, name)
    if needs_domains(trainer_cls):
        data = ["--root", fixtures["pacs"], "--dataset-config-file", os.path.join(repo, "configs/datasets/pacs.yaml"),
                "--target-domains", "sketch"]
        dataset_opts = ["DATASET.NUM_SHOTS", "2"]
    else:
        data = ["--root", fixtures["caltech"], "--dataset-config-file",
                os.path.join(repo, "configs/datasets/caltech101.yaml")]
        dataset_opts = ["DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base"]
    node = trainer_cls.CONFIG_NODE
    return ["--seed", "1", "--trainer", name, *data, *(["--config-file", config] if config else []),
            "--output-dir", out, "--no-train", "MODEL.BACKBONE.NAME", fixtures["clip"], "INPUT.SIZE", "(32, 32)",
            "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", str(device == "cuda"), "OPTIM.MAX_EPOCH", "1",
            "OPTIM.WARMUP_EPOCH", "0", "OPTIM.NAME", "sgd", "TRAIN.PRINT_FREQ", "1000",
            "TRAIN.CUDA_GRAPHS", str(graphs),
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "50", *dataset_opts,
            *([f"TRAINER.{node}.PREC", prec] if node else [])]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def eval_logits(trainer, images):
    trainer.set_model_mode("eval")
    with trainer.precision.autocast():
        return trainer.model(images.to(trainer.device)).float().cpu()


def trainable_vector(trainer):
    module = trainer.trainable_module()
    return torch.cat([v.detach().float().cpu().flatten() for v in module.state_dict().values()])


def run_variant(train_module, argv, batches, images, device):
    """Build the trainer, run the training steps on `batches`, evaluate. Returns (trainer, measurements)."""
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = train_module.main(argv)
    measured = {"runs_as": trainer.precision.name}
    if trainer.get_model_names():
        initial = trainable_vector(trainer)
        trainer.set_model_mode("train")
        trainer.epoch, trainer.num_batches = 0, 10 ** 6
        times, losses = [], []
        for i, batch in enumerate(batches):
            trainer.batch_idx = i
            _sync(device)
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                summary = trainer.forward_backward(batch)
            _sync(device)
            times.append(time.perf_counter() - start)
            losses.append(summary["loss"])
        later = sorted(times[1:]) or times  # the first step may capture graphs
        measured.update(step_ms=round(1000 * later[len(later) // 2], 2), losses=[round(x, 5) for x in losses],
                        graphs_captured=len(trainer.graphed_forward.graphs),
                        graph_capture_failed=trainer.graphed_forward.failed,
                        prompts=trainable_vector(trainer))
        measured["update"] = measured["prompts"] - initial
        if trainer.scaler is not None:
            measured["scale"] = float(trainer.scaler.get_scale())
    measured["logits"] = eval_logits(trainer, images)
    with contextlib.redirect_stdout(io.StringIO()):
        measured["accuracy"] = float(trainer.test())
    return trainer, measured


def relative_difference(a, b):
    """max |a - b| / max |b| (0 when both are 0)."""
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / scale if scale > 0 else float((a - b).abs().max())


def clear_agreement(logits, reference):
    """The share of images whose prediction equals the reference's, among those whose reference top-2 margin
    is more than twice the evaluation tolerance (near ties may flip by rounding); None if there are none."""
    top2 = reference.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * EVAL_TOLERANCE * reference.abs().max()
    if not clear.any():
        return None
    return float((logits.argmax(-1) == reference.argmax(-1))[clear].float().mean())


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def judge(row, graphs_eager=None):
    """The problems of one variant's measurements (an empty list: it passed)."""
    problems = []
    if not all(math.isfinite(x) for x in row.get("losses", [])) or not row.get("finite", True):
        problems.append("a loss or logit is not finite")
    if row.get("eval_vs_fp32", 0.0) > EVAL_TOLERANCE:
        problems.append(f"evaluating the fp32 prompts, logits differ from fp32 by {row['eval_vs_fp32']:.2%} "
                        f"(> {EVAL_TOLERANCE:.0%})")
    if row.get("agree_fp32") is not None and row["agree_fp32"] < 1.0:
        problems.append(f"evaluating the fp32 prompts, {1 - row['agree_fp32']:.0%} of the clear predictions changed")
    if row.get("loss_vs_fp32", 0.0) > EVAL_TOLERANCE:
        problems.append(f"the first step's loss differs from fp32's by {row['loss_vs_fp32']:.2%} "
                        f"(> {EVAL_TOLERANCE:.0%})")
    if row.get("update_cosine") is not None and row["prec"] == "fp16" and row["update_cosine"] < UPDATE_COSINE:
        problems.append(f"the prompt update points elsewhere than fp32's (cosine {row['update_cosine']:.3f} "
                        f"< {UPDATE_COSINE})")
    if graphs_eager is not None:
        tol = GRAPH_TOLERANCE[row["prec"]]
        if row["vs_eager"] > tol:
            problems.append(f"graphed steps end {row['vs_eager']:.2e} from eager ones (> {tol:.0e})")
        if row.get("graph_capture_failed"):
            problems.append("the CUDA-graph capture failed (training ran eagerly)")
    return problems


def compare_trainer(train_module, repo, name, device, fixtures, workdir, variants=VARIANTS, steps=None):
    """Every variant of one trainer against its fp32 steps: a list of table rows (dicts)."""
    from .engine import TRAINER_REGISTRY

    steps = steps or STEPS
    trainer_cls = TRAINER_REGISTRY.get(name)
    if trainer_cls.CONFIG_NODE is None:  # zero-shot CLIP: no PREC key and no training; fp16 is its only mode
        variants = [("fp16", False)]
    rows, reference, done, batches, images = [], None, {}, None, None
    for prec, graphs in variants:
        out = os.path.join(workdir, f"{name}-{prec}{'-graphs' if graphs else ''}")
        argv = trainer_argv(repo, name, trainer_cls, prec, graphs, device, fixtures, out)
        row = {"trainer": name, "prec": prec, "cuda_graphs": graphs}
        try:
            if batches is None:  # the same training batches and evaluation images for every variant
                with contextlib.redirect_stdout(io.StringIO()):
                    first = train_module.main(argv)
                batches = [] if not first.get_model_names() else \
                    [{k: v for k, v in b.items() if torch.is_tensor(v)} for _, b in zip(range(steps),
                                                                                          first.train_loader_x)]
                res = first.cfg.INPUT.SIZE[0]
                images = torch.randn(8, 3, res, res, generator=torch.Generator().manual_seed(0))
                argv = trainer_argv(repo, name, trainer_cls, prec, graphs, device, fixtures, out + "-run")
            trainer, measured = run_variant(train_module, argv, batches, images, device)
            row.update(measured)
            row["finite"] = bool(torch.isfinite(measured["logits"]).all())
            if reference is not None and "update" in measured:
                ref = reference["measured"]
                row["loss_vs_fp32"] = abs(measured["losses"][0] - ref["losses"][0]) / abs(ref["losses"][0])
                row["update_cosine"] = cosine(measured["update"], ref["update"])
                # The evaluation alone: this precision on the fp32 steps' prompts.
                trainer.trainable_module().load_state_dict(reference["state"])
                logits = eval_logits(trainer, images)
                row["finite"] = row["finite"] and bool(torch.isfinite(logits).all())
                row["eval_vs_fp32"] = relative_difference(logits, ref["logits"])
                row["agree_fp32"] = clear_agreement(logits, ref["logits"])
            eager = done.get((prec, False)) if graphs else None
            if eager is not None:
                row["vs_eager"] = max(relative_difference(measured["prompts"], eager["prompts"]),
                                      relative_difference(measured["logits"], eager["logits"]))
            row["problems"] = judge(row, eager)
            if prec == "fp32" and not graphs and trainer.get_model_names():
                state = trainer.trainable_module().state_dict()
                reference = {"measured": measured, "state": {k: v.detach().clone() for k, v in state.items()}}
            done[prec, graphs] = measured
        except Exception as e:  # noqa: BLE001 (recorded, the other variants go on)
            row["problems"] = [f"{type(e).__name__}: {e}"]
        rows.append(row)
    for row in rows:
        row["ok"] = not row["problems"]
        for key in ("update", "prompts", "logits", "finite"):
            row.pop(key, None)
    return rows


class _TrainPy:
    """train.py's command line through the library's entry point, returning the trainer it built."""

    def __init__(self, repo):
        self.repo = repo

    def main(self, argv):
        from .entry import main

        return main(argv, codebase=self.repo).trainer


def check_trainers(repo, device, workdir, names=None, time_limit=TRAINERS_TIME_LIMIT_S):
    from .plugins import is_codebase_module, load_codebase

    train_module = _TrainPy(repo)
    with contextlib.redirect_stdout(io.StringIO()):
        load_codebase(repo)
    from .engine import TRAINER_REGISTRY

    registered = [n for n in TRAINER_REGISTRY.registered_names()
                  if is_codebase_module(TRAINER_REGISTRY.get(n).__module__, repo, "trainers")]
    names = sorted(registered) if not names else list(names)
    unknown = sorted(set(names) - set(registered))
    if unknown:
        raise GpuCheckError(f"--trainers: {unknown} are not registered trainers (registered: {sorted(registered)})")
    start = time.time()
    fixtures = make_fixtures(workdir)
    rows = []
    for i, name in enumerate(names):
        if time.time() - start > time_limit:
            return rows, f"ran past its time limit of {time_limit} s: {names[i:]} not compared"
        rows += compare_trainer(train_module, repo, name, device, fixtures, workdir)
    return rows, None


# ------------------------------------------------------------------------------------------ benchmarks
def run_benchmark(repo, section, out_dir, extra=(), timeout=None):
    """One benchmark script in a subprocess (its JSON into out_dir); a dict for the report."""
    command, limit = BENCHMARKS[section]
    json_path = os.path.join(out_dir, f"{section}.json")
    argv = [sys.executable, *command, "--json", json_path, *extra]
    start = time.time()
    record = {"command": " ".join(argv[1:]).replace(out_dir + os.sep, ""), "time_limit_s": timeout or limit}
    try:
        # This checkout's vlprompt, whatever is installed (as the repository's scripts do).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
        proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout or limit)
        record["exit_status"] = proc.returncode
        record["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
        if proc.returncode != 0:
            record["problem"] = f"exit status {proc.returncode}"
    except subprocess.TimeoutExpired:
        record["problem"] = f"ran past its time limit of {timeout or limit} s"
    record["wall_s"] = round(time.time() - start, 1)
    if os.path.exists(json_path):
        with open(json_path) as f:
            record["result"] = json.load(f)
    elif "problem" not in record:
        record["problem"] = "wrote no JSON"
    return record


# ---------------------------------------------------------------------------------------- the report
def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows, columns):
    """rows (dicts) as a Markdown table of `columns` [(key, header)]."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


TRAINER_COLUMNS = [("trainer", "trainer"), ("prec", "PREC"), ("cuda_graphs", "CUDA graphs"), ("runs_as", "runs as"),
                   ("graphs_captured", "graphs"), ("step_ms", "ms/step"), ("loss_vs_fp32", "1st loss vs fp32"),
                   ("update_cosine", "update cos. fp32"), ("scale", "loss scale"),
                   ("eval_vs_fp32", "eval logits vs fp32"), ("agree_fp32", "same clear prediction"),
                   ("vs_eager", "graphs vs eager"), ("accuracy", "accuracy %"), ("ok", "ok"), ("problems", "problems")]


def benchmark_markdown(section, record):
    if record.get("skipped"):
        return f"## {section}\n\nNot run: {record['skipped']}."
    lines = [f"## {section}", "", f"`python {record.get('command', '')}` — {record.get('wall_s', '?')} s"]
    if record.get("problem"):
        lines += ["", f"**Not complete: {record['problem']}.**"]
    result = record.get("result") or {}
    rows = result.get("rows") or []
    if rows:
        keys = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        lines += ["", markdown_table(rows, [(k, k) for k in keys])]
    elif record.get("output_tail"):
        lines += ["", "```", record["output_tail"][-1500:], "```"]
    return "\n".join(lines)


def side_by_side(report):
    """Rows pairing the original code's figures (section original) with vlprompt's (bench_methods) for the same
    method, classes and batch: [{what, classes, batch, original, vlprompt, vlprompt_graphs, speedup}]."""
    original = ((report["sections"].get("original") or {}).get("result") or {}).get("rows") or []
    ours = ((report["sections"].get("bench_methods") or {}).get("result") or {}).get("rows") or []
    found = {(r.get("what"), r.get("classes"), r.get("batch")): r.get("images_per_s") for r in ours}
    rows = []
    for r in original:
        if not r.get("what", "").endswith(" (original)") or r.get("images_per_s") is None:
            continue
        what = r["what"][:-len(" (original)")]
        key = (r["classes"], r["batch"])
        eager, graphs = found.get((what, *key)), found.get((f"{what} (CUDA graphs)", *key))
        best = max([x for x in (eager, graphs) if x is not None], default=None)
        rows.append({"what": what, "classes": r["classes"], "batch": r["batch"], "original": r["images_per_s"],
                     "vlprompt": eager, "vlprompt_graphs": graphs,
                     "speedup": round(best / r["images_per_s"], 2) if best and r["images_per_s"] else None})
    return rows


def write_report(report, out_dir):
    """gpu_check.json and gpu_check.md in out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, md_path = os.path.join(out_dir, "gpu_check.json"), os.path.join(out_dir, "gpu_check.md")
    write_json_atomic(report, json_path)
    env = report["environment"]
    lines = [f"# vlprompt GPU check: {env['device']}", "",
             f"{env['date']} · vlprompt {env['vlprompt']} · torch {env['torch']} · CUDA {env['cuda']} · "
             f"`python -m vlprompt.gpu_check {' '.join(report['argv'])}` · {report['wall_s']} s in all", "",
             f"**{'All checks passed.' if report['ok'] else 'Some checks failed or did not run: see below.'}**"]
    trainers = report["sections"].get("trainers")
    if trainers is not None:
        lines += ["", "## trainers", "",
                  f"{STEPS} training steps (batch 4, tiny CLIP, generated data) per variant, from the same seed "
                  "on the same batches as the fp32 steps. Against fp32: the first step's loss and, with the fp32 "
                  "steps' prompts loaded, the logits of 8 fixed images (relative to the largest |logit|; tolerance "
                  f"{EVAL_TOLERANCE:.0%}); the cosine of the prompt update with fp32's (judged for fp16, at least "
                  f"{UPDATE_COSINE}; amp's GradScaler skips the steps whose scaled gradients overflow, see "
                  "'loss scale'). With CUDA graphs: the prompts and logits after the steps against the same "
                  "precision's eager steps (relative).", ""]
        if trainers.get("problem"):
            lines.append(f"**Not complete: {trainers['problem']}.**")
        lines.append(markdown_table(trainers.get("rows", []), TRAINER_COLUMNS))
    pairs = side_by_side(report)
    if pairs:
        lines += ["", "## vlprompt and the original code, side by side", "",
                  "images/s, model only (random-weight ViT-B/16, fp16, images already on the GPU), both measured in "
                  "this run: vlprompt's from bench_methods, the original's from bench_original (its own trainer "
                  "classes' forward_backward and model_inference).", "",
                  markdown_table(pairs, [("what", "what"), ("classes", "classes"), ("batch", "batch"),
                                         ("original", "original"), ("vlprompt", "vlprompt"),
                                         ("vlprompt_graphs", "vlprompt, CUDA graphs"), ("speedup", "speed-up")])]
    for section in SECTIONS[1:]:
        record = report["sections"].get(section)
        if record is not None:
            lines += ["", benchmark_markdown(section, record)]
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return json_path, md_path


def environment(device):
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores; test mode)"
    return {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "vlprompt": __version__,
            "python": sys.version.split()[0], "date": datetime.datetime.now().isoformat(timespec="seconds")}


# ------------------------------------------------------------------------------------------ command line
def build_parser():
    parser = argparse.ArgumentParser(prog="python -m vlprompt.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu_check", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--original", default=None,
                        help="a checkout of the original code (e.g. multimodal-prompt-learning, with Dassl "
                             "importable) to time side by side")
    parser.add_argument("--dassl", default=None,
                        help="a Dassl.pytorch checkout for --original, if Dassl is not installed")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, metavar="SECTION",
                        help=f"what to run (default: all of {', '.join(SECTIONS)})")
    parser.add_argument("--trainers", nargs="+", default=None, help="only these trainers (default: all registered)")
    parser.add_argument("--repo", default=None, help="the repository (default: found as `vlprompt run` finds it)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help=f"cpu: for the test suite only, with {TEST_ONLY_CPU_HALF}=1")
    return parser


def check_device(device):
    if device == "cpu":
        if not cpu_half_enabled():
            raise GpuCheckError(f"--device cpu is for the test suite only and needs {TEST_ONLY_CPU_HALF}=1 (without it "
                                "a CPU runs fp16 as fp32 and nothing would be compared)")
        return
    if not torch.cuda.is_available():
        raise GpuCheckError(f"python -m vlprompt.gpu_check needs a CUDA GPU, and torch {torch.__version__} sees none "
                            f"(torch.cuda.is_available() is False); without one, run the test suite: {TEST_COMMAND}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    check_device(args.device)
    from .plugins import find_codebase

    repo = find_codebase("train.py", args.repo, what="the repository (train.py)")
    if "original" in args.sections and args.original and not os.path.isdir(args.original):
        raise GpuCheckError(f"--original {args.original}: no such folder (give a checkout of the original code)")
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()
    report = {"argv": argv, "environment": environment(args.device), "sections": {}}
    with tempfile.TemporaryDirectory(prefix="vlprompt-gpu-check-") as workdir:
        for section in args.sections:
            print(f"== {section}", flush=True)
            t0 = time.time()
            if section == "trainers":
                try:
                    rows, problem = check_trainers(repo, args.device, workdir, args.trainers)
                    record = {"rows": rows, **({"problem": problem} if problem else {})}
                except UserError:
                    raise
                except Exception as e:  # noqa: BLE001
                    record = {"rows": [], "problem": f"{type(e).__name__}: {e}"}
            elif section == "original" and not args.original:
                record = {"skipped": "no --original checkout given: the original code was not run"}
            elif args.device != "cuda":
                record = {"skipped": "benchmarks run on a GPU only"}
            elif not os.path.exists(os.path.join(repo, BENCHMARKS[section][0][0])):
                record = {"skipped": f"{BENCHMARKS[section][0][0]} is not in {repo} (run from a checkout)"}
            else:
                extra = []
                if section == "original":
                    extra = ["--original", os.path.abspath(args.original)]
                    extra += ["--dassl", os.path.abspath(args.dassl)] if args.dassl else []
                record = run_benchmark(repo, section, out_dir, extra)
            record["wall_s"] = round(time.time() - t0, 1)
            report["sections"][section] = record
            print(f"   {record['wall_s']} s{': ' + record['problem'] if record.get('problem') else ''}", flush=True)
    report["wall_s"] = round(time.time() - start, 1)
    report["ok"] = all(not r.get("problem") and all(row["ok"] for row in r.get("rows", []))
                       and (not r.get("skipped") or name == "original")
                       for name, r in report["sections"].items())
    json_path, md_path = write_report(report, out_dir)
    print(f"Wrote {md_path} and {json_path}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
