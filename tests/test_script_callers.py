"""The scripts in scripts/ are thin callers of vlprompt.protocols (through vlprompt.script_jobs), and they
still run exactly what their bash implementation ran: the train.py command lines, messages and exit
statuses recorded from it (tests/script_cases.py, tests/data/script_command_lines.json), for every script,
its environment variables, and bad input."""
import json
import os
import shlex
import subprocess
import sys

import pytest


from helpers import REPO_ROOT
from script_cases import CASES, finish, make_unfinished, make_weights, normalise, substitute

GOLDEN = json.load(open(os.path.join(REPO_ROOT, "tests", "data", "script_command_lines.json")))


def run_script(script, args, env, paths, dry_run=True):
    full = dict(os.environ, DATA=paths["DATA"], OUTPUT=paths["OUTPUT"], PYTHON=sys.executable)
    full.pop("VARIANT", None)
    if dry_run:
        full["DRY_RUN"] = "1"
    full.update({k: substitute(v, paths) for k, v in env.items()})
    return subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", script), *[substitute(a, paths) for a in args]],
                          env=full, cwd="/", capture_output=True, text=True, timeout=120)


def test_every_script_runs_what_its_bash_implementation_ran(tmp_path):
    assert [c["name"] for c in CASES] == [g["name"] for g in GOLDEN]
    paths = {"DATA": str(tmp_path / "data"), "OUTPUT": str(tmp_path / "output"), "WEIGHTS": str(tmp_path / "weights"),
             "REPO": REPO_ROOT}
    os.makedirs(paths["DATA"])
    make_weights(paths["WEIGHTS"])
    make_unfinished(paths["OUTPUT"])
    dirs = {}
    for case, expected in zip(CASES, GOLDEN):
        for name in case["prepare"]:
            for d in dirs[name]:
                finish(d)
        proc = run_script(case["script"], case["args"], case["env"], paths)
        where = f"{case['name']}: {case['script']} {' '.join(case['args'])}\n{proc.stderr}"
        assert proc.returncode == expected["returncode"], where
        runs, other = [], []
        for line in proc.stdout.splitlines():
            words = shlex.split(line) if line.startswith(sys.executable + " ") else None
            if words and words[1] == os.path.join(REPO_ROOT, "train.py"):
                runs.append(words[2:])
            else:
                other.append(normalise(line, paths))
        assert [[normalise(a, paths) for a in r] for r in runs] == expected["runs"], where
        assert other == expected["stdout"], where
        assert normalise(proc.stderr, paths).strip().splitlines() == expected["stderr"], where
        dirs[case["name"]] = [r[r.index("--output-dir") + 1] for r in runs]
    started = [folder for folder, _, files in os.walk(paths["OUTPUT"]) if "identity.json" in files or "log.txt" in files]
    assert started == [], "a dry run started runs"
    assert not os.path.exists(os.path.join(paths["OUTPUT"], "caltech101", "CoOp")), "a dry run made run directories"


def test_scripts_contain_no_protocol_logic():
    """Each script is its usage comment, the shared helpers and one script_job line."""
    for folder in sorted(os.listdir(os.path.join(REPO_ROOT, "scripts"))):
        path = os.path.join(REPO_ROOT, "scripts", folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            code = [line for line in open(os.path.join(path, name)).read().splitlines()
                    if line and not line.startswith("#")]
            assert code[0] == 'source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"', (folder, name)
            assert len(code) == 2 and code[1].startswith("script_job ") and code[1].endswith(f' {folder} "$@"'), \
                (folder, name)


def test_a_failed_run_of_a_multi_seed_script_does_not_stop_the_others(tmp_path, caltech_root, tiny_clip_path):
    """coop/main.sh runs its seeds in one process: a failing seed is reported with its folder, the others
    still run and finish, and the exit status says that something failed; running it again completes it."""
    from helpers import fast_opts, read_result

    out = tmp_path / "out"
    paths = {"DATA": str(caltech_root), "OUTPUT": str(out), "REPO": REPO_ROOT}
    opts = fast_opts(tiny_clip_path, epochs=1)
    bad = out / "caltech101/CoOp/vit_b16_ep50_1shots/nctx4_cscFalse_ctpend/seed2"
    bad.mkdir(parents=True)
    (bad / "identity.json").write_text("{not json")  # another run's (unreadable) identity: refused
    proc = run_script("coop/main.sh", ["caltech101", "vit_b16_ep50", "end", "4", "1", "False", *opts],
                      {"SEEDS": "1 2 3", "VARIANT": ""}, paths, dry_run=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("error: runs failed: caltech101/CoOp/vit_b16_ep50_1shots/nctx4_cscFalse_ctpend/seed2 (their "
                    "logs: log.txt in each; re-run this command to resume them)"), proc.stderr[-3000:]
    for seed in (1, 3):
        result = read_result(str(bad).replace("seed2", f"seed{seed}"))
        assert result["identity"]["seed"] == seed
    (bad / "identity.json").unlink()
    again = run_script("coop/main.sh", ["caltech101", "vit_b16_ep50", "end", "4", "1", "False", *opts],
                       {"SEEDS": "1 2 3", "VARIANT": ""}, paths, dry_run=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(so skip this job)") == 2 and read_result(str(bad))["identity"]["seed"] == 2


def test_runs_in_one_process_equal_runs_in_their_own(tmp_path, caltech_root, tiny_clip_path):
    """Seed 2 run by coop/main.sh after seed 1 in the same process gives the same result.json and checkpoint
    tensors as seed 2 run alone."""
    import torch

    from helpers import fast_opts, read_result

    args = ["caltech101", "vit_b16_ep50", "end", "4", "2", "False", *fast_opts(tiny_clip_path, epochs=1)]
    tail = "caltech101/CoOp/vit_b16_ep50_2shots/nctx4_cscFalse_ctpend/seed2"
    for folder, seeds in (("both", "1 2"), ("alone", "2")):
        paths = {"DATA": str(caltech_root), "OUTPUT": str(tmp_path / folder), "REPO": REPO_ROOT}
        proc = run_script("coop/main.sh", args, {"SEEDS": seeds, "VARIANT": ""}, paths, dry_run=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    both, alone = read_result(str(tmp_path / "both" / tail)), read_result(str(tmp_path / "alone" / tail))
    for key in ("metrics", "num_test_images"):
        assert both[key] == alone[key], key
    assert both["identity"]["fingerprint"] == alone["identity"]["fingerprint"]
    a, b = (torch.load(tmp_path / folder / tail / "prompt_learner/model.pth.tar-1", weights_only=False)["state_dict"]
            for folder in ("both", "alone"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


COOP_MAIN = ["caltech101", "vit_b16_ep50", "end", "4", "2", "False"]


@pytest.mark.parametrize("script, args, env, message", [
    ("coop/main.sh", COOP_MAIN, {"SEEDS": "1 x"}, "error: SEEDS='1 x': 'x' is not a seed (an integer)\n"),
    ("maple/base2new_train.sh", ["caltech101", "one"], {},
     "error: SEED 'one' is not allowed: expected a seed (an integer >= 0)\n"),
    ("maple/base2new_train.sh", ["caltech101", "1"], {"SHOTS": "abc"},
     "error: SHOTS='abc' is not a shot count: expected an integer K >= 1 (images per class), or -1 for all images\n"),
    ("coop/eval.sh", ["imagenet_a", "rn50_ep50"], {"SHOTS": "2.5"},
     "error: SHOTS='2.5' is not a shot count: expected an integer K >= 1 (images per class), or -1 for all images\n"),
    ("coop/main.sh", COOP_MAIN[:5] + ["Maybe"], {},
     "error: CSC 'Maybe' is not allowed: expected True or False (class-specific context)\n"),
    ("coop/main.sh", COOP_MAIN[:3] + ["x"] + COOP_MAIN[4:], {},
     "error: NCTX 'x' is not allowed: expected a number of context tokens (an integer >= 1)\n"),
    ("coop/main.sh", COOP_MAIN[:4] + ["abc"] + COOP_MAIN[5:], {},
     "error: SHOTS 'abc' is not allowed: expected a shot count (an integer >= 1, or -1 for all images)\n"),
    ("metaprompt/dg.sh", ["pacs", "sketch", "1", "0"], {},
     "error: SHOTS '0' is not allowed: expected a shot count (an integer >= 1, or -1 for all images)\n"),
])
def test_a_bad_argument_stops_the_script_before_any_run(tmp_path, script, args, env, message):
    """The bash scripts passed such values on to train.py (coop/main.sh trained seed 1 before seed 'x' failed in
    argparse); now each is one line and exit status 2, with nothing run."""
    paths = {"DATA": str(tmp_path), "OUTPUT": str(tmp_path / "out"), "REPO": REPO_ROOT}
    proc = run_script(script, args, env, paths, dry_run=False)
    assert (proc.returncode, proc.stderr) == (2, message)
    assert not (tmp_path / "out").exists()


def test_coop_eval_evaluates_the_model_trained_with_shots(tmp_path):
    """coop/eval.sh used the 16-shot folder whatever SHOTS said; SHOTS=2 evaluates main.sh's 2-shot models."""
    from script_cases import finish

    paths = {"DATA": str(tmp_path / "data"), "OUTPUT": str(tmp_path / "out"), "REPO": REPO_ROOT}
    os.makedirs(paths["DATA"])
    trained = tmp_path / "out/imagenet/CoOp/rn50_ep50_2shots/nctx16_cscFalse_ctpend/seed1"
    finish(str(trained))
    proc = run_script("coop/eval.sh", ["imagenet_a", "rn50_ep50"], {"SEEDS": "1", "SHOTS": "2"}, paths)
    assert proc.returncode == 0, proc.stderr
    assert f"--model-dir {trained} " in proc.stdout
    assert "evaluation/CoOp/rn50_ep50_2shots/nctx16_cscFalse_ctpend/imagenet_a/seed1" in proc.stdout
