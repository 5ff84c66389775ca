"""`vlprompt results`: tables from result.json files, with the papers' HM convention and comparisons."""
import json
import os

import pytest

from vlprompt.cli import main as cli_main
from vlprompt.paper_numbers import BASE2NEW, harmonic_mean
from vlprompt.results import base2new_tables, build, dg_tables, xd_tables


def write_result(path, **fields):
    os.makedirs(path, exist_ok=True)
    result = {"method": "MaPLe", "config": "vit_b16_c2_ep5_batch4_2ctx", "shots": 16, "seed": 1, "subsample": "all",
              "mode": "train", "finished_at": "2026-01-01T00:00:00"}
    result.update(fields)
    result["metrics"] = {"accuracy": fields.pop("accuracy", result.get("accuracy"))}
    with open(os.path.join(path, "result.json"), "w") as f:
        json.dump(result, f)


def b2n(root, phase, dataset_dir, dataset, seed, accuracy, **extra):
    subsample = "new" if phase == "test_new" else "base"
    path = os.path.join(root, "base2new", phase, dataset_dir, "shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx", f"seed{seed}")
    write_result(path, dataset=dataset, seed=seed, subsample=subsample, accuracy=accuracy,
                 mode="train" if phase == "train_base" else "eval-only", **extra)


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
    assert "DescribableTextures: base seeds [1, 2, 3], new seeds [1, 2]" in table["notes"]
    avg = table["average"]
    b, n = (caltech["base"] + dtd["base"]) / 2, (caltech["new"] + dtd["new"]) / 2
    assert avg["hm"] == pytest.approx(harmonic_mean(b, n))
    assert avg["hm"] != pytest.approx((caltech["hm"] + dtd["hm"]) / 2)  # not the mean of per-dataset HMs
    assert "paper" not in avg  # 2 of 11 datasets: not compared with the paper's average


def test_a_reproduce_run_counts_as_base_and_the_latest_run_of_a_seed_wins(tmp_path):
    b2n(tmp_path, "train_base", "eurosat", "EuroSAT", 1, 90.0, finished_at="2026-01-01T00:00:00")
    b2n(tmp_path, "test_base", "eurosat", "EuroSAT", 1, 94.0, finished_at="2026-02-01T00:00:00")
    b2n(tmp_path, "test_new", "eurosat", "EuroSAT", 1, 73.0)
    [table] = base2new_tables(str(tmp_path))
    assert table["rows"][0]["base"] == 94.0 and table["rows"][0]["new"] == 73.0


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


def test_cross_dataset_and_dg_tables(tmp_path):
    for seed, acc in ((1, 70.0), (2, 72.0)):
        write_result(tmp_path / f"imagenet/MaPLe/cfg_16shots/seed{seed}", config="cfg", dataset="ImageNet", seed=seed,
                     accuracy=acc)
        for dataset, a in (("OxfordPets", 90.0 + seed), ("EuroSAT", 48.0), ("ImageNetA", 50.0 + seed)):
            write_result(tmp_path / f"evaluation/MaPLe/cfg_16shots/{dataset.lower()}/seed{seed}", config="cfg",
                         dataset=dataset, seed=seed, accuracy=a, mode="eval-only")
    [table] = xd_tables(str(tmp_path))
    assert table["columns"]["ImageNet"] == 71.0 and table["columns"]["OxfordPets"] == 91.5
    assert table["xd_average"] == (pytest.approx((91.5 + 48.0) / 2), 2) and table["dg_average"] == (51.5, 1)

    for target, acc in (("art_painting", 95.0), ("sketch", 85.0)):
        write_result(tmp_path / f"dg/pacs/shots_5/MetaPrompt/dgcfg/{target}/seed1", method="MetaPrompt", config="dgcfg",
                     shots=5, dataset="PACSFS", target_domains=[target], accuracy=acc)
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
    assert stem.with_suffix(".svg").read_text().startswith("<svg")
    assert cli_main(["results", "base2new", str(tmp_path), "--trainer", "CoCoOp"]) == 1
    assert build("xd", str(tmp_path), out=lambda *_: None) == []
