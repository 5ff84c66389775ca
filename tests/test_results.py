"""`vlprompt results`: tables from result.json files, with the papers' HM convention and comparisons."""
import json
import os

import pytest

from vlprompt.cli import main as cli_main
from vlprompt.paper_numbers import BASE2NEW, harmonic_mean
from vlprompt.results import base2new_tables, build, dg_tables, fewshot_tables, xd_tables, zeroshot_tables
from vlprompt.run_identity import build_identity, trained_summary

from helpers import REPO_ROOT


def identity_for(method="MaPLe", config="vit_b16_c2_ep5_batch4_2ctx", shots=16, seed=1, subsample="all",
                 dataset="Caltech101", dataset_config=None, kind="train", opts=(), values=None, model=None,
                 trained_on=None, trained_shots=None):
    """The identity train.py would record for such a run (a small stand-in for the resolved config)."""
    cfg = {"SEED": seed, "TRAINER": {"NAME": method, "X": {"N_CTX": 2}}, "OPTIM": {"MAX_EPOCH": 5, "LR": 0.0035},
           "MODEL": {"BACKBONE": {"NAME": "ViT-B/16"}},
           "DATASET": {"NAME": dataset, "NUM_SHOTS": shots, "SUBSAMPLE_CLASSES": subsample, "ROOT": "/data"}}
    for key, value in (values or {}).items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if kind == "eval" and model is None:  # the model of the training run with the same settings, as train.py records
        trained = identity_for(method, config, trained_shots or shots, seed, "base" if subsample == "new" else "all",
                               trained_on or dataset, kind="train", opts=opts, values=values)
        model = {"dir": "/runs/x", "load_epoch": 5, "files": {"MultiModalPromptLearner/model.pth.tar-5": f"{seed:064d}"},
                 "trained": trained_summary(trained)}
    return build_identity(cfg, kind, opts, f"configs/trainers/{method}/{config}.yaml",
                          f"configs/datasets/{dataset_config or dataset.lower()}.yaml", clip_sha256="c" * 64,
                          model=model, version="test", precision="fp32", device="cpu")


def write_result(path, accuracy, **fields):
    os.makedirs(path, exist_ok=True)
    identity = identity_for(**fields)
    result = {"method": identity["trainer"], "dataset": identity["dataset"], "seed": identity["seed"],
              "target_domains": fields.get("values", {}).get("DATASET.TARGET_DOMAINS", []),
              "metrics": {"accuracy": accuracy}, "identity": identity}
    with open(os.path.join(path, "result.json"), "w") as f:
        json.dump(result, f)
    return identity


def b2n(root, phase, dataset_dir, dataset, seed, accuracy, config="vit_b16_c2_ep5_batch4_2ctx", **extra):
    subsample = "new" if phase == "test_new" else "base"
    path = os.path.join(root, "base2new", phase, dataset_dir, f"shots_16/MaPLe/{config}", f"seed{seed}")
    return write_result(path, accuracy, dataset=dataset, dataset_config=dataset_dir, seed=seed, subsample=subsample,
                        config=config, kind="train" if phase == "train_base" else "eval", **extra)


def test_base2new_table_uses_seed_means_and_the_hm_of_averages(tmp_path):
    for seed, (b, n) in enumerate([(97.0, 94.0), (98.0, 95.0), (98.2, 94.4)], 1):
        b2n(tmp_path, "train_base", "caltech101", "Caltech101", seed, b)
        b2n(tmp_path, "test_new", "caltech101", "Caltech101", seed, n)
    for seed, (b, n) in enumerate([(80.0, 55.0), (81.0, 60.0)], 1):
        b2n(tmp_path, "train_base", "dtd", "DescribableTextures", seed, b)
        b2n(tmp_path, "test_new", "dtd", "DescribableTextures", seed, n)
    b2n(tmp_path, "train_base", "dtd", "DescribableTextures", 3, 79.0)  # seed 3 has no new result yet
    [table] = base2new_tables(str(tmp_path))
    caltech, dtd = table["rows"]
    assert caltech["dataset"] == "Caltech101" and caltech["base"] == pytest.approx((97.0 + 98.0 + 98.2) / 3)
    assert caltech["hm"] == pytest.approx(harmonic_mean(caltech["base"], caltech["new"]))
    assert caltech["paper"] == BASE2NEW["MaPLe"]["per_dataset"]["Caltech101"]
    assert dtd["base_seeds"] == [1, 2, 3] and dtd["new_seeds"] == [1, 2]
    assert "DescribableTextures new: no result for seed 3" in table["notes"]
    avg = table["average"]
    b, n = (caltech["base"] + dtd["base"]) / 2, (caltech["new"] + dtd["new"]) / 2
    assert avg["hm"] == pytest.approx(harmonic_mean(b, n))
    assert avg["hm"] != pytest.approx((caltech["hm"] + dtd["hm"]) / 2)  # not the mean of per-dataset HMs
    assert "paper" not in avg  # 2 of 11 datasets: not compared with the paper's average


def test_a_seed_with_two_different_results_is_left_out_and_named(tmp_path):
    b2n(tmp_path, "train_base", "eurosat", "EuroSAT", 1, 90.0)
    b2n(tmp_path, "test_base", "eurosat", "EuroSAT", 1, 94.0)  # a stray re-test of the same seed
    b2n(tmp_path, "train_base", "eurosat", "EuroSAT", 2, 92.0)
    for seed in (1, 2):
        b2n(tmp_path, "test_new", "eurosat", "EuroSAT", seed, 73.0)
    [table] = base2new_tables(str(tmp_path))
    assert table["rows"][0]["base"] == 92.0 and table["rows"][0]["base_seeds"] == [2]
    [note] = [n for n in table["notes"] if "seed 1 has 2 results that differ" in n]
    assert "train_base" in note and "test_base" in note


def test_all_eleven_datasets_are_compared_with_the_papers_average(tmp_path):
    per_dataset = BASE2NEW["MaPLe"]["per_dataset"]
    for dataset, (b, n, _) in per_dataset.items():
        b2n(tmp_path, "train_base", dataset.lower(), dataset, 1, b)
        b2n(tmp_path, "test_new", dataset.lower(), dataset, 1, n)
    [table] = base2new_tables(str(tmp_path))
    assert [r["dataset"] for r in table["rows"]] == list(per_dataset)  # the papers' column order
    # The paper's own per-dataset numbers give back its README average (82.28 / 75.14 / 78.55).
    assert table["average"]["paper"] == (82.28, 75.14, 78.55)
    assert (round(table["average"]["base"], 2), round(table["average"]["new"], 2), round(table["average"]["hm"], 2)) \
        == (82.28, 75.14, 78.55)


@pytest.mark.parametrize("trainer,entry", [("ExtrasLinearProbeCoOp", "CoOp+DePT"), ("ExtrasLinearProbeCoCoOp", "CoCoOp+DePT"),
                                           ("ExtrasLinearProbeKgCoOp", "KgCoOp+DePT"),
                                           ("ExtrasLinearProbeMaPLe", "MaPLe+DePT")])
def test_depts_published_numbers_are_its_tables_and_give_back_its_averages(tmp_path, trainer, entry):
    """Each per-dataset HM is 2BN/(B+N) of its base and new, and the columns' means are the paper's average row (the
    check against transcription errors), found for the DePT trainer's runs."""
    per_dataset = BASE2NEW[entry]["per_dataset"]
    for dataset, (b, n, h) in per_dataset.items():
        assert harmonic_mean(b, n) == pytest.approx(h, abs=0.011), dataset  # the paper rounds after the HM
        b2n(tmp_path, "train_base", dataset.lower(), dataset, 1, b, method=trainer)
        b2n(tmp_path, "test_new", dataset.lower(), dataset, 1, n, method=trainer)
    [table] = base2new_tables(str(tmp_path))
    assert table["paper"] == entry and table["average"]["paper"] == BASE2NEW[entry]["average"]
    average = table["average"]
    assert [round(average["base"], 2), average["new"], round(average["hm"], 2)] == \
        [BASE2NEW[entry]["average"][0], pytest.approx(BASE2NEW[entry]["average"][1], abs=0.011),
         BASE2NEW[entry]["average"][2]]


def test_cross_dataset_and_dg_tables(tmp_path):
    for seed, acc in ((1, 70.0), (2, 72.0)):
        write_result(tmp_path / f"imagenet/MaPLe/cfg_16shots/seed{seed}", config="cfg", dataset="ImageNet", seed=seed,
                     accuracy=acc)
        for dataset, a in (("OxfordPets", 90.0 + seed), ("EuroSAT", 48.0), ("ImageNetA", 50.0 + seed)):
            write_result(tmp_path / f"evaluation/MaPLe/cfg_16shots/{dataset.lower()}/seed{seed}", config="cfg",
                         dataset=dataset, seed=seed, accuracy=a, kind="eval", shots=-1, trained_shots=16,
                         trained_on="ImageNet")
    [table] = xd_tables(str(tmp_path))
    assert table["columns"]["ImageNet"] == 71.0 and table["columns"]["OxfordPets"] == 91.5
    assert table["xd_average"] == (pytest.approx((91.5 + 48.0) / 2), 2) and table["dg_average"] == (51.5, 1)

    for target, acc in (("art_painting", 95.0), ("sketch", 85.0)):
        write_result(tmp_path / f"dg/pacs/shots_5/MetaPrompt/dgcfg/{target}/seed1", method="MetaPrompt", config="dgcfg",
                     shots=5, dataset="PACSFS", dataset_config="pacs", values={"DATASET.TARGET_DOMAINS": [target]},
                     accuracy=acc)
    [dg] = dg_tables(str(tmp_path))
    assert dg["columns"] == {"art_painting": 95.0, "sketch": 85.0} and dg["average"] == 90.0
    assert dg["paper"]["MetaPrompt (5-shot)"] == 97.0


def test_cli_writes_markdown_csv_and_svg(tmp_path, capsys):
    b2n(tmp_path, "train_base", "caltech101", "Caltech101", 1, 97.0)
    b2n(tmp_path, "test_new", "caltech101", "Caltech101", 1, 94.0)
    assert cli_main(["results", "base2new", str(tmp_path), "--trainer", "MaPLe"]) == 0
    out = capsys.readouterr().out
    assert "| Caltech101 | 97.00 | 94.00 | 95.48 | 1 | 97.74 | 94.36 | 96.02 | -0.54 |" in out
    stem = tmp_path / "tables/base2new_MaPLe_vit_b16_c2_ep5_batch4_2ctx"
    assert (stem.with_suffix(".md")).read_text().startswith("### MaPLe")
    assert "Caltech101,97.00,0.00,94.00,0.00,95.48,1,97.74,94.36,96.02" in stem.with_suffix(".csv").read_text()
    assert "<svg" in stem.with_suffix(".svg").read_text()
    assert stem.with_suffix(".png").read_bytes().startswith(b"\x89PNG") and stem.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert cli_main(["results", "base2new", str(tmp_path), "--trainer", "CoCoOp"]) == 1
    assert build("xd", str(tmp_path), out=lambda *_: None) == []


def test_seeds_of_different_settings_are_never_averaged(tmp_path):
    # Seeds 1 and 2 trained for 5 epochs, seed 3 for 2 epochs with an override (90/90/30 must not give 70).
    for seed in (1, 2):
        b2n(tmp_path, "train_base", "caltech101", "Caltech101", seed, 90.0)
        b2n(tmp_path, "test_new", "caltech101", "Caltech101", seed, 80.0)
    short = {"opts": ["OPTIM.MAX_EPOCH", "2"], "values": {"OPTIM.MAX_EPOCH": 2}}
    b2n(tmp_path, "train_base", "caltech101", "Caltech101", 3, 30.0, **short)
    b2n(tmp_path, "test_new", "caltech101", "Caltech101", 3, 20.0, **short)
    # Same options, but another CLIP file: a third group, labelled with what differs.
    other = b2n(tmp_path, "train_base", "caltech101", "Caltech101", 4, 50.0, values={"MODEL.BACKBONE.NAME": "RN50"})
    tables = base2new_tables(str(tmp_path))
    by_label = {t["variant"]: t for t in tables}
    assert len(tables) == 3 and by_label["OPTIM.MAX_EPOCH=2"]["rows"][0]["base"] == 30.0
    plain = [t for t in tables if "OPTIM" not in t["variant"] and "RN50" not in t["variant"]]
    assert [r["base"] for t in plain for r in t["rows"]] == [90.0]
    assert any("MODEL.BACKBONE.NAME: 'ViT-B/16' -> 'RN50'" in t["variant"] for t in tables)
    assert other["fingerprint"] not in {t["fingerprint"] for t in plain}
    # Only the paper's own setting is compared with the paper.
    assert by_label["OPTIM.MAX_EPOCH=2"]["paper"] is None
    text = build("base2new", str(tmp_path), out=lambda *_: None)
    assert len(text) == 3 and len(list((tmp_path / "tables").glob("*.md"))) == 3


def test_two_custom_dataset_configs_are_two_rows_and_old_results_are_named(tmp_path):
    for config, acc in (("flowers_a", 70.0), ("flowers_b", 60.0)):
        b2n(tmp_path, "train_base", config, "CustomDataset", 1, acc)
        b2n(tmp_path, "test_new", config, "CustomDataset", 1, acc - 10)
    os.makedirs(tmp_path / "base2new/train_base/old/seed1")
    with open(tmp_path / "base2new/train_base/old/seed1/result.json", "w") as f:
        json.dump({"method": "MaPLe", "dataset": "CustomDataset", "metrics": {"accuracy": 1.0}}, f)
    lines = []
    [table] = base2new_tables(str(tmp_path), out=lines.append)
    assert [(r["dataset"], r["base"]) for r in table["rows"]] == [("CustomDataset (flowers_a)", 70.0),
                                                                   ("CustomDataset (flowers_b)", 60.0)]
    assert lines == [f"WARNING: 1 result.json that vlprompt did not write (no metrics, method, dataset or mode) left "
                     f"out: {tmp_path / 'base2new/train_base/old/seed1/result.json'}"]


# ------------------------------------------------------------------ runs of a codebase's own train.py
def unidentified_result(root, phase, seed, accuracy, opts=(), prec=None, recorded=True):
    """result.json as vlprompt's MaPLe writes it when a codebase's own train.py ran it: no identity, its
    resolved config recorded (config_values) since the drop-in fixes; older ones recorded none."""
    from vlprompt.config import build_config
    from vlprompt.run_identity import flatten

    subsample = "new" if phase == "test_new" else "base"
    opts = ["DATASET.SUBSAMPLE_CLASSES", subsample, "SEED", seed, "DATASET.NUM_SHOTS", 16, *opts]
    if prec:
        opts += ["TRAINER.MAPLE.PREC", prec]
    cfg = build_config(os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
                       os.path.join(REPO_ROOT, "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"),
                       opts=["TRAINER.NAME", "MaPLe", "OUTPUT_DIR", f"/fork/output/{phase}/seed{seed}", *opts])
    result = {"method": "MaPLe", "dataset": "Caltech101", "subsample": subsample, "shots": 16, "seed": seed,
              "backbone": "ViT-B/16", "config": None, "config_file": None, "dataset_config_file": None,
              "source_domains": [], "target_domains": [], "precision": {"requested": prec or "fp16", "used": "fp32"},
              "mode": "eval-only" if phase == "test_new" else "train", "metrics": {"accuracy": accuracy},
              "device": "cpu", "identity": None}
    if recorded:
        result["config_values"] = flatten(cfg)
    path = os.path.join(root, "fork", phase, "_".join(map(str, opts[6:])) or "plain", f"seed{seed}")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "result.json"), "w") as f:
        json.dump(result, f)


def test_runs_without_an_identity_are_tabulated_on_their_own(tmp_path):
    b2n(tmp_path, "train_base", "caltech101", "Caltech101", 1, 90.0)  # an identified run: its own table
    b2n(tmp_path, "test_new", "caltech101", "Caltech101", 1, 80.0)
    for seed, (base, new) in ((1, (50.0, 40.0)), (2, (52.0, 44.0))):
        unidentified_result(tmp_path, "train_base", seed, base)
        # evaluated at PREC fp32, the model trained at the default fp16 on a CPU (which computed in fp32)
        unidentified_result(tmp_path, "test_new", seed, new, prec="fp32" if seed == 2 else None)
    unidentified_result(tmp_path, "train_base", 1, 30.0, opts=("OPTIM.MAX_EPOCH", 2))  # other settings
    unidentified_result(tmp_path, "test_new", 1, 20.0, opts=("OPTIM.MAX_EPOCH", 2))
    lines = []
    tables = base2new_tables(str(tmp_path), out=lines.append)
    assert len(tables) == 3 and lines[0].startswith("Note: 6 result.json without a run identity (written by a "
                                                    "codebase's own train.py) are tabulated on their own, marked "
                                                    "[no run identity]: ")
    [identified] = [t for t in tables if t["origin"] == "trained"]
    assert identified["variant"] == "" and [(r["base"], r["new"]) for r in identified["rows"]] == [(90.0, 80.0)]
    assert identified["paper"] == "MaPLe"
    fork = sorted((t for t in tables if t["origin"] == "unidentified"), key=lambda t: t["rows"][0]["base"])
    short, plain = fork
    assert plain["rows"][0]["base_per_seed"] == {1: 50.0, 2: 52.0} and plain["rows"][0]["new_per_seed"] == {1: 40.0,
                                                                                                            2: 44.0}
    assert plain["rows"][0]["hm"] == pytest.approx(harmonic_mean(51.0, 42.0)) and plain["paper"] is None
    assert plain["variant"].startswith("[no run identity: a codebase's own train.py]")
    assert short["rows"][0]["base_per_seed"] == {1: 30.0} and short["rows"][0]["new_per_seed"] == {1: 20.0}
    tags = sorted(t["variant"].split("] [", 1)[1].split(": ", 1)[1] for t in fork)  # what tells the two apart
    assert tags in (["OPTIM.MAX_EPOCH: 2 -> 5]", "reference]"], ["OPTIM.MAX_EPOCH: 5 -> 2]", "reference]"])
    written = build("base2new", str(tmp_path), out=lambda *_: None)
    assert len(written) == 3
    stems = sorted(p.name for p in (tmp_path / "tables").glob("*.md"))
    assert len([s for s in stems if "unidentified" in s]) == 2 and len(stems) == 3
    markdown = (tmp_path / "tables" / [s for s in stems if "unidentified" in s][0]).read_text()
    assert "[no run identity: a codebase's own train.py]" in markdown.splitlines()[0]


def test_runs_without_an_identity_or_a_recorded_config_say_so(tmp_path):
    unidentified_result(tmp_path, "train_base", 1, 50.0, recorded=False)
    unidentified_result(tmp_path, "test_new", 1, 40.0, recorded=False)
    [table] = base2new_tables(str(tmp_path), out=lambda *_: None)
    assert table["origin"] == "unidentified" and (table["rows"][0]["base"], table["rows"][0]["new"]) == (50.0, 40.0)
    assert table["variant"] == ("[no run identity: a codebase's own train.py] [settings not recorded: runs that differ "
                                "in anything but the backbone are averaged]")


# ------------------------------------------------------------------------------ tables that never mix
def xd_run(root, shots, seed, source_acc, target_accs, config="rn50_ep50", method="CoOp", eval_shots=None):
    """A CoOp-style ImageNet training run with `shots` and its evaluations (their own DATASET.NUM_SHOTS:
    eval_shots, as a command line may give it)."""
    folder = f"{config}_{shots}shots/nctx16_cscFalse_ctpend"
    write_result(root / f"imagenet/{method}/{folder}/seed{seed}", source_acc, method=method, config=config,
                 dataset="ImageNet", shots=shots, seed=seed)
    for dataset, acc in target_accs.items():
        write_result(root / f"evaluation/{method}/{folder}/{dataset.lower()}/seed{seed}", acc, method=method,
                     config=config, dataset=dataset, seed=seed, kind="eval", shots=eval_shots or shots,
                     trained_shots=shots, trained_on="ImageNet")


def test_cross_dataset_tables_never_mix_shot_counts(tmp_path):
    for seed in (1, 2):
        xd_run(tmp_path, 16, seed, 60.0, {"OxfordPets": 80.0})
        # a 2-shot model, evaluated under DATASET.NUM_SHOTS 16: still a 2-shot result
        xd_run(tmp_path, 2, seed, 20.0, {"OxfordPets": 40.0}, eval_shots=16)
    tables = {t["shots"]: t for t in xd_tables(str(tmp_path))}
    assert set(tables) == {2, 16}
    assert tables[16]["columns"] == {"ImageNet": 60.0, "OxfordPets": 80.0}
    assert tables[2]["columns"] == {"ImageNet": 20.0, "OxfordPets": 40.0}
    [only16] = xd_tables(str(tmp_path), shots=16)
    assert only16["columns"]["ImageNet"] == 60.0 and only16["seeds"]["ImageNet"] == [1, 2]
    assert build("xd", str(tmp_path), out=lambda *_: None)
    assert sorted(p.name for p in (tmp_path / "tables").glob("*.md")) == [
        "xd_CoOp_rn50_ep50.md", "xd_CoOp_rn50_ep50_2shot.md"]


def test_dg_tables_never_mix_shot_counts(tmp_path):
    for shots, acc in ((1, 50.0), (5, 90.0)):
        write_result(tmp_path / f"dg/pacs/shots_{shots}/MetaPrompt/dgcfg/sketch/seed1", acc, method="MetaPrompt",
                     config="dgcfg", shots=shots, dataset="PACSFS", dataset_config="pacs",
                     values={"DATASET.TARGET_DOMAINS": ["sketch"]})
    tables = dg_tables(str(tmp_path))
    assert sorted((t["shots"], t["columns"]["sketch"]) for t in tables) == [(1, 50.0), (5, 90.0)]


def test_base2new_hm_only_over_seeds_with_both_halves(tmp_path):
    for seed, acc in ((1, 90.0), (3, 80.0), (8, 70.0)):
        b2n(tmp_path, "train_base", "caltech101", "Caltech101", seed, acc)
    for seed, acc in ((2, 60.0), (8, 50.0)):
        b2n(tmp_path, "test_new", "caltech101", "Caltech101", seed, acc)
    [table] = base2new_tables(str(tmp_path))
    [row] = table["rows"]
    assert row["seeds"] == [8] and row["base"] == 70.0 and row["new"] == 50.0
    assert row["hm"] == pytest.approx(harmonic_mean(70.0, 50.0))
    assert any("over seeds 8, the seeds with both halves; seed 1, 2, 3 has only one" in n for n in table["notes"])
    b2n(tmp_path / "other", "train_base", "dtd", "DescribableTextures", 1, 70.0)
    b2n(tmp_path / "other", "test_new", "dtd", "DescribableTextures", 2, 50.0)
    [table] = base2new_tables(str(tmp_path / "other"))
    assert "hm" not in table["rows"][0] and table["average"] is None
    assert any("no seed has both a base and a new result" in n for n in table["notes"])


def test_released_weights_and_own_training_write_separate_files(tmp_path):
    for seed in (1, 2):
        b2n(tmp_path, "train_base", "caltech101", "Caltech101", seed, 90.0)
        b2n(tmp_path, "test_new", "caltech101", "Caltech101", seed, 70.0)
        released = {"dir": "/released/base/seed1", "load_epoch": 5, "files": {"m": f"{seed:064d}"}, "trained": None}
        for phase, acc in (("test_base", 95.0), ("test_new", 75.0)):
            b2n(tmp_path / "released", phase, "caltech101", "Caltech101", seed, acc, model=released)
    tables = build("base2new", str(tmp_path), out=lambda *_: None)
    assert sorted((t["origin"], t["rows"][0]["base"]) for t in tables) == [("released", 95.0), ("trained", 90.0)]
    stems = sorted(p.stem for p in (tmp_path / "tables").glob("*.md"))
    assert stems == ["base2new_MaPLe_vit_b16_c2_ep5_batch4_2ctx", "base2new_MaPLe_vit_b16_c2_ep5_batch4_2ctx_released"]
    assert len(list((tmp_path / "tables").glob("*.png"))) == 2


def test_two_variants_with_the_same_options_write_separate_files(tmp_path):
    for backbone, acc in (("ViT-B/16", 90.0), ("RN50", 60.0)):  # same (no) options, different settings
        for phase, a in (("train_base", acc), ("test_new", acc - 10)):
            b2n(tmp_path / backbone.replace("/", ""), phase, "caltech101", "Caltech101", 1, a,
                values={"MODEL.BACKBONE.NAME": backbone})
    tables = build("base2new", str(tmp_path), out=lambda *_: None)
    assert len(tables) == 2 and len(list((tmp_path / "tables").glob("*.md"))) == 2


def fewshot_run(root, dataset, shots, seed, acc, epochs):
    config = {1: "rn50_ep50", 2: "rn50_ep100", 4: "rn50_ep100"}.get(shots, "rn50")
    write_result(root / f"{dataset.lower()}/CoOp/{config}_{shots}shots/nctx16_cscFalse_ctpend/seed{seed}", acc,
                 method="CoOp", config=config, dataset=dataset, shots=shots, seed=seed,
                 values={"OPTIM.MAX_EPOCH": epochs, "MODEL.BACKBONE.NAME": "RN50"})


def test_fewshot_table_is_accuracy_against_shots_next_to_zero_shot_clip(tmp_path):
    epochs = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}
    for dataset, base in (("Caltech101", 80.0), ("EuroSAT", 50.0)):
        for k in (1, 2, 4, 8, 16):
            for seed in (1, 2, 3):
                fewshot_run(tmp_path, dataset, k, seed, base + k + seed, epochs[k])
        write_result(tmp_path / f"ZeroshotCLIP/rn50/{dataset.lower()}", base - 10, method="ZeroshotCLIP", config="rn50",
                     dataset=dataset, seed=-1, kind="eval", model={}, values={"MODEL.BACKBONE.NAME": "RN50"})
    fewshot_run(tmp_path, "EuroSAT", 16, 4, 1.0, epochs=10)  # another schedule: not this curve
    tables = fewshot_tables(str(tmp_path))
    [curve] = [t for t in tables if len(t["rows"]) == 2]
    [other] = [t for t in tables if t is not curve]  # the 10-epoch run: a curve of its own, labelled with why
    assert other["rows"][0]["shots"] == {16: (1.0, 0.0)} and "OPTIM.MAX_EPOCH: 200 -> 10" in other["variant"]
    assert curve["config"] == "rn50" and curve["all_shots"] == [1, 2, 4, 8, 16]
    caltech, eurosat = curve["rows"]
    assert caltech["shots"][4][0] == pytest.approx(80.0 + 4 + 2) and caltech["per_seed"][4] == [85.0, 86.0, 87.0]
    assert caltech["zero_shot"] == 70.0 and eurosat["zero_shot"] == 40.0
    assert curve["average"]["shots"][16][0] == pytest.approx((80.0 + 16 + 2 + 50.0 + 16 + 2) / 2)
    assert any("1 shots: 50 epochs, 2 shots: 100 epochs" in n for n in curve["notes"])
    assert cli_main(["results", "fewshot", str(tmp_path), "--trainer", "CoOp"]) == 0
    assert cli_main(["results", "zeroshot", str(tmp_path)]) == 0
    [zs] = zeroshot_tables(str(tmp_path))
    assert [(r["dataset"], r["accuracy"]) for r in zs["rows"]] == [("Caltech101", 70.0), ("EuroSAT", 40.0)]
    assert (tmp_path / "tables/zeroshot_ZeroshotCLIP_rn50.png").is_file()
    assert len(list((tmp_path / "tables").glob("fewshot_CoOp_rn50*.png"))) == 2
