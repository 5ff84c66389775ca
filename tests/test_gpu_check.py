"""`python -m vlprompt.gpu_check`, everything of it that needs no GPU (issue 24): the one-line refusal
without a GPU, argument handling, the per-trainer comparison run on the CPU with the test-only half switch
(VLPROMPT_TEST_ONLY_CPU_HALF=1, where fp16 and amp really compute in float16 and CUDA graphs never capture),
the judgement of a comparison, running a benchmark script (its JSON, a failure, a time limit), and the JSON
and Markdown report."""
import json
import os

import pytest
import torch

from helpers import REPO_ROOT
from vlprompt import gpu_check
from vlprompt.errors import run_main
from vlprompt.precision import TEST_ONLY_CPU_HALF

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


def cli(argv, capsys):
    code = run_main(gpu_check.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------- refusals
@needs_no_gpu
def test_without_a_gpu_it_stops_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(TEST_ONLY_CPU_HALF, raising=False)
    code, out, err = cli(["--out", tmp_path / "report"], capsys)
    assert code == 2 and out == ""
    assert err == (f"error: python -m vlprompt.gpu_check needs a CUDA GPU, and torch {torch.__version__} sees none "
                   "(torch.cuda.is_available() is False); without one, run the test suite: python -m pytest -q -n 2 "
                   "--dist loadfile\n")
    assert not (tmp_path / "report").exists()


def test_the_cpu_mode_is_for_the_tests_only(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(TEST_ONLY_CPU_HALF, raising=False)
    code, out, err = cli(["--device", "cpu", "--out", tmp_path], capsys)
    assert code == 2 and err == ("error: --device cpu is for the test suite only and needs "
                                 "VLPROMPT_TEST_ONLY_CPU_HALF=1 (without it a CPU runs fp16 as fp32 and nothing would "
                                 "be compared)\n")


def test_bad_arguments_are_refused_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    base = ["--device", "cpu", "--out", tmp_path / "out"]
    code, _, err = cli([*base, "--trainers", "CoOp", "NoSuchTrainer", "--sections", "trainers"], capsys)
    assert code == 2 and err.startswith("error: --trainers: ['NoSuchTrainer'] are not registered trainers "
                                        "(registered: ['CoCoOp', 'CoOp', ")
    code, _, err = cli([*base, "--original", tmp_path / "missing"], capsys)
    assert code == 2 and err == f"error: --original {tmp_path / 'missing'}: no such folder (give a checkout of the " \
                                "original code)\n"
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main([*map(str, base), "--sections", "nonsense"])
    assert exit_info.value.code == 2
    assert "argument --sections: invalid choice: 'nonsense'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ trainer comparison
def test_the_trainer_comparison_on_the_cpu_writes_the_json_and_the_table(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    monkeypatch.setattr(gpu_check, "STEPS", 2)
    out = tmp_path / "report"
    code, printed, err = cli(["--device", "cpu", "--sections", "trainers", "original", "--trainers", "CoOp",
                              "ZeroshotCLIP", "--out", out, "--repo", REPO_ROOT], capsys)
    assert code == 0, (printed, err)
    assert printed.splitlines()[0] == "== trainers" and printed.splitlines()[-1] == \
        f"Wrote {out / 'gpu_check.md'} and {out / 'gpu_check.json'}"
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] is True and report["environment"]["device"].startswith("cpu (")
    assert report["sections"]["original"]["skipped"] == "no --original checkout given: the original code was not run"
    rows = report["sections"]["trainers"]["rows"]
    assert [(r["trainer"], r["prec"], r["cuda_graphs"], r["runs_as"]) for r in rows] == [
        ("CoOp", "fp32", False, "fp32"), ("CoOp", "fp16", False, "fp16"), ("CoOp", "fp16", True, "fp16"),
        ("CoOp", "amp", False, "amp"), ("CoOp", "amp", True, "amp"), ("ZeroshotCLIP", "fp16", False, "fp16")]
    assert all(r["ok"] and r["problems"] == [] for r in rows)
    coop = {(r["prec"], r["cuda_graphs"]): r for r in rows if r["trainer"] == "CoOp"}
    for key in (("fp16", False), ("amp", False)):
        row = coop[key]
        assert 0 < row["eval_vs_fp32"] <= gpu_check.EVAL_TOLERANCE and row["agree_fp32"] in (1.0, None)
        assert row["loss_vs_fp32"] <= gpu_check.EVAL_TOLERANCE and len(row["losses"]) == 2
    assert coop["fp16", False]["update_cosine"] > gpu_check.UPDATE_COSINE
    assert coop["amp", False]["scale"] <= 65536.0 and "scale" not in coop["fp16", False]
    # On the CPU no graph is captured, so the "graphed" steps are the eager ones exactly.
    assert all(r["graphs_captured"] == 0 and r["vs_eager"] == 0.0 for k, r in coop.items() if k[1])
    table = (out / "gpu_check.md").read_text()
    assert table.startswith("# vlprompt GPU check: cpu (") and "**All checks passed.**" in table
    assert "| trainer | PREC | CUDA graphs | runs as | graphs | ms/step |" in table
    assert "| CoOp | amp | yes | amp | 0 |" in table and "| ZeroshotCLIP | fp16 | no | fp16 |" in table
    assert "## original\n\nNot run: no --original checkout given: the original code was not run." in table


def row(prec="fp16", graphs=False, **values):
    return {"trainer": "X", "prec": prec, "cuda_graphs": graphs, "losses": [1.0, 0.9], **values}


def test_the_judgement_of_one_comparison():
    assert gpu_check.judge(row(eval_vs_fp32=0.01, loss_vs_fp32=0.001, update_cosine=0.99)) == []
    assert gpu_check.judge(row(losses=[1.0, float("nan")])) == ["a loss or logit is not finite"]
    assert gpu_check.judge(row(finite=False)) == ["a loss or logit is not finite"]
    assert gpu_check.judge(row(eval_vs_fp32=0.03)) == [
        "evaluating the fp32 prompts, logits differ from fp32 by 3.00% (> 2%)"]
    assert gpu_check.judge(row(agree_fp32=0.75)) == [
        "evaluating the fp32 prompts, 25% of the clear predictions changed"]
    assert gpu_check.judge(row(agree_fp32=None)) == []
    assert gpu_check.judge(row(loss_vs_fp32=0.5)) == ["the first step's loss differs from fp32's by 50.00% (> 2%)"]
    assert gpu_check.judge(row(update_cosine=0.3)) == [
        "the prompt update points elsewhere than fp32's (cosine 0.300 < 0.5)"]
    assert gpu_check.judge(row("amp", update_cosine=-0.2)) == []  # the GradScaler skips steps by design
    eager = {"prompts": torch.zeros(1)}
    assert gpu_check.judge(row("fp32", True, vs_eager=1e-5), eager) == []
    assert gpu_check.judge(row("fp32", True, vs_eager=1e-3), eager) == [
        "graphed steps end 1.00e-03 from eager ones (> 1e-04)"]
    assert gpu_check.judge(row("fp16", True, vs_eager=0.0, graph_capture_failed=True), eager) == [
        "the CUDA-graph capture failed (training ran eagerly)"]


def test_relative_difference_and_cosine():
    a, b = torch.tensor([1.0, -2.0, 4.0]), torch.tensor([1.0, -2.5, 4.0])
    assert gpu_check.relative_difference(a, b) == pytest.approx(0.5 / 4.0)
    assert gpu_check.relative_difference(torch.zeros(2), torch.zeros(2)) == 0.0
    reference = torch.tensor([[3.0, 1.0], [2.0, 1.99], [0.0, 3.0]])  # the second image is a near tie
    assert gpu_check.clear_agreement(torch.tensor([[2.0, 1.0], [1.0, 2.0], [0.0, 1.0]]), reference) == 1.0
    assert gpu_check.clear_agreement(torch.tensor([[0.0, 1.0], [1.0, 2.0], [0.0, 1.0]]), reference) == 0.5
    assert gpu_check.clear_agreement(reference[1:2], reference[1:2]) is None
    assert gpu_check.cosine(a, 2 * a) == pytest.approx(1.0) and gpu_check.cosine(a, -a) == pytest.approx(-1.0)


# ----------------------------------------------------------------------------------------- benchmarks
@pytest.fixture
def fake_benchmark(tmp_path, monkeypatch):
    """A repository whose benchmarks/fake.py behaves as told by its first argument."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "fake.py").write_text(
        "import json, sys, time\n"
        "mode, path = sys.argv[1], sys.argv[sys.argv.index('--json') + 1]\n"
        "print('measuring')\n"
        "assert sys.path[1] == sys.argv[sys.argv.index('--repo') + 1], sys.path  # PYTHONPATH: the checkout first\n"
        "if mode == 'sleep':\n    time.sleep(30)\n"
        "if mode == 'fail':\n    sys.exit('it broke')\n"
        "json.dump({'device': 'x', 'rows': [{'what': 'a', 'images_per_s': 10.5}, {'what': 'b', 'note': 'p|q'}]},"
        " open(path, 'w'))\n")

    def setup(mode, limit=60):
        monkeypatch.setitem(gpu_check.BENCHMARKS, "bench_eval", (["benchmarks/fake.py", mode], limit))
        return str(repo)

    return setup


def test_a_benchmark_runs_in_a_subprocess_and_its_json_is_kept(fake_benchmark, tmp_path):
    repo, out = fake_benchmark("ok"), tmp_path / "out"
    out.mkdir()
    record = gpu_check.run_benchmark(repo, "bench_eval", str(out), extra=["--repo", repo])
    assert record["exit_status"] == 0 and "problem" not in record, record.get("output_tail")
    assert record["command"] == f"benchmarks/fake.py ok --json bench_eval.json --repo {repo}"
    assert record["result"]["rows"][0] == {"what": "a", "images_per_s": 10.5}
    assert json.loads((out / "bench_eval.json").read_text()) == record["result"]
    text = gpu_check.benchmark_markdown("bench_eval", record)
    assert text.splitlines()[:3] == ["## bench_eval", "", f"`python {record['command']}` — {record['wall_s']} s"]
    assert "| what | images_per_s | note |\n|---|---|---|\n| a | 10.5 |  |\n| b |  | p\\|q |" in text


def test_a_failing_or_hanging_benchmark_is_recorded_and_does_not_stop_the_check(fake_benchmark, tmp_path):
    repo = fake_benchmark("fail")
    failed = gpu_check.run_benchmark(repo, "bench_eval", str(tmp_path), extra=["--repo", repo])
    assert failed["problem"] == "exit status 1" and "it broke" in failed["output_tail"]
    assert "**Not complete: exit status 1.**" in gpu_check.benchmark_markdown("bench_eval", failed)
    repo = fake_benchmark("sleep", limit=1)
    hung = gpu_check.run_benchmark(repo, "bench_eval", str(tmp_path / "h"), extra=["--repo", repo])
    assert hung["problem"] == "ran past its time limit of 1 s" and hung["wall_s"] < 20


def test_the_report_names_the_gpu_and_every_section(tmp_path):
    report = {"argv": ["--out", "x"], "wall_s": 12.0, "ok": False,
              "environment": {"device": "NVIDIA H100 80GB HBM3", "date": "2026-12-06T12:00:00", "vlprompt": "0.1.0",
                              "torch": "2.14.1", "cuda": "13.0", "python": "3.11"},
              "sections": {"trainers": {"rows": [row(eval_vs_fp32=0.001, ok=True, problems=[])]},
                           "bench_eval": {"command": "benchmarks/bench_eval.py --full", "wall_s": 3.0,
                                          "result": {"rows": [{"what": "floor", "images_per_s": 5600.0}]}},
                           "bench_protocol": {"command": "benchmarks/bench_protocol.py --full", "wall_s": 150.2,
                                              "problem": "ran past its time limit of 150 s"},
                           "original": {"skipped": "no --original checkout given: the original code was not run"}}}
    json_path, md_path = gpu_check.write_report(report, str(tmp_path))
    assert json.loads(open(json_path).read()) == report
    text = open(md_path).read()
    assert text.splitlines()[:5] == [
        "# vlprompt GPU check: NVIDIA H100 80GB HBM3", "",
        "2026-12-06T12:00:00 · vlprompt 0.1.0 · torch 2.14.1 · CUDA 13.0 · "
        "`python -m vlprompt.gpu_check --out x` · 12.0 s in all", "",
        "**Some checks failed or did not run: see below.**"]
    assert "| X | fp16 | no |" in text and "| floor | 5600 |" in text
    assert "## bench_protocol\n\n`python benchmarks/bench_protocol.py --full` — 150.2 s\n\n" \
           "**Not complete: ran past its time limit of 150 s.**" in text


def test_the_original_code_and_vlprompt_side_by_side(tmp_path):
    ours = [{"what": "maple train", "classes": 50, "batch": 4, "images_per_s": 100.0},
            {"what": "maple train (CUDA graphs)", "classes": 50, "batch": 4, "images_per_s": 400.0},
            {"what": "coop eval", "classes": 1000, "batch": 100, "images_per_s": 5000.0}]
    original = [{"what": "maple train (original)", "classes": 50, "batch": 4, "images_per_s": 50.0},
                {"what": "coop eval (original)", "classes": 1000, "batch": 100, "images_per_s": 1000.0},
                {"what": "cocoop train (original)", "classes": 50, "batch": 1, "images_per_s": 20.0},
                {"what": "maple eval (original): FAILED (RuntimeError: x)", "classes": 50}]
    report = {"argv": [], "wall_s": 1.0, "ok": True,
              "environment": {"device": "GPU", "date": "d", "vlprompt": "v", "torch": "t", "cuda": "c"},
              "sections": {"bench_methods": {"result": {"rows": ours}}, "original": {"result": {"rows": original}}}}
    assert gpu_check.side_by_side(report) == [
        {"what": "maple train", "classes": 50, "batch": 4, "original": 50.0, "vlprompt": 100.0,
         "vlprompt_graphs": 400.0, "speedup": 8.0},
        {"what": "coop eval", "classes": 1000, "batch": 100, "original": 1000.0, "vlprompt": 5000.0,
         "vlprompt_graphs": None, "speedup": 5.0},
        {"what": "cocoop train", "classes": 50, "batch": 1, "original": 20.0, "vlprompt": None,
         "vlprompt_graphs": None, "speedup": None}]
    _, md_path = gpu_check.write_report(report, str(tmp_path))
    text = open(md_path).read()
    assert "| what | classes | batch | original | vlprompt | vlprompt, CUDA graphs | speed-up |" in text
    assert "| maple train | 50 | 4 | 50 | 100 | 400 | 8 |" in text
    del report["sections"]["original"]
    assert gpu_check.side_by_side(report) == []


def test_every_benchmark_exists_takes_a_json_argument_and_the_limits_fit_eight_minutes():
    assert set(gpu_check.BENCHMARKS) == set(gpu_check.SECTIONS) - {"trainers"}
    for section, (command, _) in gpu_check.BENCHMARKS.items():
        path = os.path.join(REPO_ROOT, command[0])
        assert os.path.exists(path), section
        assert '"--json"' in open(path).read(), section
    limits = [limit for _, limit in gpu_check.BENCHMARKS.values()] + [gpu_check.TRAINERS_TIME_LIMIT_S]
    assert sum(limits) < 8 * 60


def test_the_trainer_comparisons_stop_at_their_time_limit(tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    monkeypatch.setattr(gpu_check, "STEPS", 1)
    rows, problem = gpu_check.check_trainers(REPO_ROOT, "cpu", str(tmp_path), ["ZeroshotCLIP", "CoOp", "VPT"],
                                             time_limit=0)
    assert rows == [] and problem == "ran past its time limit of 0 s: ['ZeroshotCLIP', 'CoOp', 'VPT'] not compared"
