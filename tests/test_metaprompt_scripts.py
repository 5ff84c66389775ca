"""MetaPrompt's scripts end to end on generated data with the tiny CLIP: base-to-new train then test, domain
generalization for one held-out domain (finished jobs skipped, a run without result.json resumed from its
checkpoint), and the loop over every target domain."""
import os
import re
import subprocess

from helpers import REPO_ROOT, fast_opts, read_result, run_script
from vlprompt.engine import DATASET_REGISTRY

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the tiny model runs faster on one thread
B2N_CFG = "vit_b16_c2_ep8_batch16_2+2ctx"
DG_CFG = "vit_b16_c4_ep6_batch32_4+4ctx_dg"


def test_base2new_train_then_test(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "output"
    opts = fast_opts(tiny_clip_path, epochs=2)
    run_script("metaprompt/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=ONE_THREAD)
    tail = f"caltech101/shots_16/MetaPrompt/{B2N_CFG}/seed1"
    train_dir = out / "base2new/train_base" / tail
    base = read_result(train_dir)
    assert (base["method"], base["subsample"], base["num_classes"]) == ("MetaPrompt", "base", 5)
    assert base["config"] == B2N_CFG
    assert base["precision"] == {"requested": "fp16", "used": "fp32"}  # the config's fp16, on a CPU
    assert os.path.isfile(train_dir / "model/model.pth.tar-2")  # the official checkpoint folder
    log = (train_dir / "log.txt").read_text()
    assert "Finish training" in log and "loss_meta" in log and "* accuracy:" in log

    run_script("metaprompt/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=ONE_THREAD)
    new = read_result(out / "base2new/test_new" / tail)
    assert new["subsample"] == "new" and new["mode"] == "eval-only" and new["load_epoch"] == 2
    assert new["checkpoint"]["path"].endswith("model/model.pth.tar-2")
    assert new["num_classes"] == 5 and new["num_test_images"] == 5 * 4

    again = run_script("metaprompt/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    assert "so skip this job" in again.stdout


def test_dg_one_target_skip_and_resume(tmp_path, pacs_root, tiny_clip_path):
    out = tmp_path / "output"
    opts = fast_opts(tiny_clip_path, epochs=2)
    run_script("metaprompt/dg.sh", "pacs", "sketch", 1, 1, *opts, data=pacs_root, output=out, env=ONE_THREAD)
    run_dir = out / f"dg/pacs/shots_1/MetaPrompt/{DG_CFG}/sketch/seed1"
    result = read_result(run_dir)
    assert (result["method"], result["dataset"], result["shots"], result["seed"]) == ("MetaPrompt", "PACSFS", 1, 1)
    assert result["target_domains"] == ["sketch"] and result["source_domains"] == ["art_painting", "cartoon", "photo"]
    assert result["num_classes"] == 3 and result["num_test_images"] == 3 * (3 + 1)  # all of sketch: train + crossval
    log = (run_dir / "log.txt").read_text()
    assert "domain split, released meta update" in log and "loss_meta" in log and re.search(r"# train_x\s+9\b", log)

    again = run_script("metaprompt/dg.sh", "pacs", "sketch", 1, 1, *opts, data=pacs_root, output=out)
    assert "so skip this job" in again.stdout

    os.remove(run_dir / "result.json")  # a run that stopped before writing its result
    resumed = run_script("metaprompt/dg.sh", "pacs", "sketch", 1, 1, *opts, data=pacs_root, output=out, env=ONE_THREAD)
    assert "will resume training" in resumed.stdout and "epoch [" not in resumed.stdout
    assert read_result(run_dir)["metrics"] == result["metrics"]


def test_dg_loop_over_every_target_domain(tmp_path):
    """dg_all.sh (DRY_RUN=1 prints the train.py command lines it would run)."""
    env = {"DRY_RUN": "1", "SEEDS": "1 2"}
    out = tmp_path / "output"
    proc = run_script("metaprompt/dg_all.sh", "office_home", 5, "OPTIM.MAX_EPOCH", 1, data=tmp_path, output=out,
                      env=env)
    lines = [line for line in proc.stdout.splitlines() if "train.py" in line]
    expected = [(t, s) for t in ["art", "clipart", "product", "real_world"] for s in (1, 2)]
    assert len(lines) == len(expected)
    for line, (target, seed) in zip(lines, expected):
        args = line.split()
        assert args[args.index("--target-domains") + 1] == target and args[args.index("--seed") + 1] == str(seed)
        assert args[args.index("--trainer") + 1] == "MetaPrompt"
        assert args[args.index("--config-file") + 1].endswith(f"configs/trainers/MetaPrompt/{DG_CFG}.yaml")
        assert args[args.index("--dataset-config-file") + 1].endswith("configs/datasets/office_home.yaml")
        run_dir = out / f"dg/office_home/shots_5/MetaPrompt/{DG_CFG}/{target}/seed{seed}"
        assert args[args.index("--output-dir") + 1] == str(run_dir)
        assert args[-4:] == ["DATASET.NUM_SHOTS", "5", "OPTIM.MAX_EPOCH", "1"]
        assert args[2] == "--skip-finished"  # train.py skips a finished run of the same identity itself

    bad = run_script("metaprompt/dg.sh", "pacs", "clipart", 1, 1, data=tmp_path, output=out, env=env, check=False)
    assert bad.returncode == 2 and "not a domain of pacs" in bad.stderr
    unset = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts/metaprompt/dg.sh"), "pacs", "photo", "1", "1"],
                           env={k: v for k, v in os.environ.items() if k != "DATA"}, capture_output=True, text=True)
    assert unset.returncode == 2 and "set DATA" in unset.stderr


def test_dg_protocol_domains_match_the_readers():
    from vlprompt.protocols import DG_DOMAINS

    names = {"pacs": "PACSFS", "vlcs": "VLCSFS", "office_home": "OfficeHomeFS", "domainnet": "DomainNetFS"}
    assert set(DG_DOMAINS) == set(names)
    for key, name in names.items():
        assert DG_DOMAINS[key] == DATASET_REGISTRY.get(name).domains
