"""The library's one entry point (vlprompt.entry): a run is a call that returns its result, from a notebook as
from train.py; the codebase's plugins are imported by location without touching sys.path or shadowing an
installed package; only vlprompt.engine knows which engine runs; the import graph has no circles."""
import ast
import json
import os
import subprocess
import sys

import pytest

import vlprompt
from helpers import REPO_ROOT, fast_opts, read_result


def test_a_notebook_trains_and_evaluates_a_run_and_reads_its_result(tmp_path, caltech_root, tiny_clip_path):
    opts = dict(zip(*[iter(fast_opts(tiny_clip_path, epochs=1))] * 2), **{"DATASET.NUM_SHOTS": 2,
                                                                           "DATASET.SUBSAMPLE_CLASSES": "base"})
    path_before = list(sys.path)
    trained = vlprompt.train("CoOp", "vit_b16_ep50", "caltech101", root=caltech_root, output_dir=tmp_path / "train",
                             seed=1, opts=opts, codebase=REPO_ROOT)
    assert trained.output_dir == str(tmp_path / "train") and not trained.skipped
    assert trained.metrics == read_result(tmp_path / "train")["metrics"] and 0 <= trained.metrics["accuracy"] <= 100
    assert trained.identity["fingerprint"] == json.load(open(tmp_path / "train/identity.json"))["fingerprint"]
    assert type(trained.trainer).__name__ == "CoOp"
    evaluated = vlprompt.evaluate("CoOp", "vit_b16_ep50", "caltech101", model_dir=tmp_path / "train", load_epoch=1,
                                  root=caltech_root, output_dir=tmp_path / "new", seed=1,
                                  opts={**opts, "DATASET.SUBSAMPLE_CLASSES": "new"}, codebase=REPO_ROOT)
    assert evaluated.result["subsample"] == "new" and evaluated.result["mode"] == "eval-only"
    assert evaluated.identity["model"]["trained"]["fingerprint"] == trained.identity["fingerprint"]
    again = vlprompt.train("CoOp", "vit_b16_ep50", "caltech101", root=caltech_root, output_dir=tmp_path / "train",
                           seed=1, opts=opts, codebase=REPO_ROOT, skip_finished=True)
    assert again.skipped and again.trainer is None and again.metrics == trained.metrics
    assert sys.path == path_before


def test_main_takes_train_py_s_command_line_and_names_bad_input(tmp_path, caltech_root, tiny_clip_path):
    from vlprompt.errors import UserError

    argv = ["--root", caltech_root, "--seed", "1", "--trainer", "CoOp", "--config-file",
            os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml"), "--dataset-config-file",
            os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"), "--output-dir", str(tmp_path / "run"),
            *fast_opts(tiny_clip_path, epochs=1), "DATASET.NUM_SHOTS", "2"]
    result = vlprompt.main(argv, codebase=REPO_ROOT)
    assert result.metrics["accuracy"] == read_result(tmp_path / "run")["metrics"]["accuracy"]
    with pytest.raises(UserError, match="OPTIM.LR 'fast' is not allowed"):
        vlprompt.main(argv + ["OPTIM.LR", "fast"], codebase=REPO_ROOT)


def test_the_run_spec_writes_train_py_s_command_line():
    from vlprompt.run_spec import RunSpec, parse_argv

    argv = ["--skip-finished", "--root", "/data", "--seed", "2", "--trainer", "MaPLe", "--dataset-config-file", "d.yaml",
            "--config-file", "c.yaml", "--target-domains", "sketch", "--output-dir", "/o", "--model-dir", "/m",
            "--load-epoch", "5", "--eval-only", "OPTIM.LR", "0.1"]
    spec = parse_argv(argv)
    assert spec == RunSpec(trainer="MaPLe", config_file="c.yaml", dataset_config_file="d.yaml", output_dir="/o",
                           root="/data", seed=2, opts=("OPTIM.LR", "0.1"), eval_only=True, model_dir="/m", load_epoch=5,
                           target_domains=("sketch",), skip_finished=True)
    assert spec.argv() == argv and parse_argv(spec.argv()) == spec


PROBE = """
import json, sys
before = list(sys.path)
from vlprompt.plugins import load_codebase
load_codebase(sys.argv[1])
from vlprompt.engine import TRAINER_REGISTRY
print(json.dumps({"path_unchanged": sys.path == before, "top_level": sorted(m for m in ("trainers", "datasets")
                  if m in sys.modules), "CoOp": TRAINER_REGISTRY.get("CoOp").__module__}))
"""


def test_a_codebase_is_imported_by_location_under_a_private_name(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, REPO_ROOT], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["path_unchanged"] and report["top_level"] == []  # no `datasets` to shadow HuggingFace's
    assert report["CoOp"].startswith("_vlprompt_codebase_") and report["CoOp"].endswith(".trainers.coop")


# ------------------------------------------------------------------------------------- the import graph
def _modules():
    package = os.path.join(REPO_ROOT, "vlprompt")
    mods = {}
    for root, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                module = os.path.relpath(path[:-3], REPO_ROOT).replace(os.sep, ".")
                mods[module[:-len(".__init__")] if module.endswith(".__init__") else module] = path
    return mods


def _imports(name, path, mods):
    """Modules of vlprompt that `name` imports (function-level imports count)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names}
            found |= subs
            if any(s not in mods for s in subs):
                found.add(base)
    return {m for m in found if m in mods and m != name}


def test_no_import_circles_and_the_engine_seam_is_the_only_door():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    # strongly connected components (Tarjan)
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []
    past_the_seam = {m: sorted(d for d in deps if d.startswith("vlprompt.engine.builtin"))
                     for m, deps in graph.items() if not m.startswith("vlprompt.engine")}
    assert {m: d for m, d in past_the_seam.items() if d} == {}
    dassl = [m for m, p in mods.items() if not m.startswith("vlprompt.engine")
             and any(line.strip().startswith(("import dassl", "from dassl")) for line in open(p))]
    assert dassl == []
