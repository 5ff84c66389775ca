"""PromptSRC's and DePT's mechanics, each against a statement of it written here: GPA's epoch weights and how the
official code averages a model (whole state dicts, key by key), applied before the checkpoint and the final test
and carried across a resume; the self-regulating terms on the same batch; DePT's fused head on the classes it was
trained on and similarity alone on new ones; its staged learning rates; its keys touching no other method; and the
one-line refusals. The seed-exact comparisons with the official code are in test_original_parity_promptsrc_dept.py.
"""
import copy
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import REPO_ROOT, fast_opts, run_train
from trainers.promptsrc import GaussianPromptAggregation, gaussian_epoch_weights, weighted_sum
from vlprompt.config import build_config
from vlprompt.errors import ConfigValueError

CONFIGS = {"PromptSRC": ("PROMPTSRC", "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx"),
           "ExtrasLinearProbeCoOp": ("COOP", "ExtrasLinearProbeCoOp/vit_b16_ep10_bs4_lr35"),
           "ExtrasLinearProbeCoCoOp": ("COCOOP", "ExtrasLinearProbeCoCoOp/vit_b16_c4_ep10_batch1_ctxv1"),
           "ExtrasLinearProbeMaPLe": ("MAPLE", "ExtrasLinearProbeMaPLe/vit_b16_c2_ep10_batch4_2ctx"),
           "CoOp": ("COOP", "CoOp/vit_b16_ep50")}


def build(name, out, data, clip_path, *opts, flags=("--no-train",), epochs=2, shots=4, subsample="base"):
    node, config = CONFIGS[name]
    return run_train(["--root", data, "--seed", 1, "--trainer", name,
                      "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
                      "--config-file", os.path.join(REPO_ROOT, "configs/trainers", f"{config}.yaml"),
                      "--output-dir", out, *flags, *fast_opts(clip_path, epochs=epochs),
                      f"TRAINER.{node}.PREC", "fp32", "DATASET.NUM_SHOTS", shots,
                      "DATASET.SUBSAMPLE_CLASSES", subsample, *opts])


def images(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ GPA
def test_gpa_weights_are_the_normalised_gaussian_over_epochs():
    # The official configs: base-to-new (20 epochs, mean 15, std 1) puts 0.399 on epoch 15 and almost nothing on
    # epochs 1-9; cross-dataset (mean 6, std 10) spreads the weight over every epoch.
    w = gaussian_epoch_weights(20, 15, 1)
    assert w.dtype == np.float64 and w.sum() == pytest.approx(1.0, abs=1e-15)
    assert int(np.argmax(w)) + 1 == 15 and w[14] == pytest.approx(0.3989, abs=1e-4)
    assert (w[:9] < 1e-8).all()
    density = [math.exp(-0.5 * ((e - 6) / 10) ** 2) for e in range(1, 21)]
    assert gaussian_epoch_weights(20, 6, 10).tolist() == pytest.approx([d / sum(density) for d in density], rel=1e-12)
    assert gaussian_epoch_weights(20, 6, 10).max() < 0.08
    # Well below the mean the last epoch takes nearly all: GPA is then about the last model.
    assert gaussian_epoch_weights(2, 15, 1)[-1] > 0.9999


def official_gpa(states, weights):
    """The official code's aggregation, stated over plain state dicts: after epoch e, a deep copy of the whole
    state dict times w_e (a numpy float64), then added key by key to the running sum."""
    total = None
    for state, w in zip(states, weights):
        weighted = copy.deepcopy(state)
        for key in state:
            weighted[key] = state[key] * w
        if total is None:
            total = weighted
        else:
            for key in weighted:
                total[key] = total[key] + weighted[key]
    return total


def test_gpa_sums_the_model_as_the_official_code_does_to_the_bit():
    g = torch.Generator().manual_seed(0)
    frozen = {"w": torch.randn(50, generator=g), "half": torch.randn(50, generator=g).half(), "scale": torch.tensor(4.6)}
    prompts = [{"ctx": torch.randn(4, 8, generator=g), "ctx16": torch.randn(3, generator=g).half()} for _ in range(4)]
    weights = gaussian_epoch_weights(4, 2, 1)
    expected = official_gpa([{**frozen, **p} for p in prompts], weights)

    gpa = GaussianPromptAggregation(weights)
    for epoch, p in enumerate(prompts):
        gpa.add_epoch(epoch, p)
    for key in prompts[0]:
        assert torch.equal(gpa.sums[key], expected[key]), key
    for key, tensor in frozen.items():  # frozen tensors do not change: summed once, at the end
        assert torch.equal(weighted_sum(tensor, weights), expected[key]), key
    # ... which moves some of them by an ulp, never more.
    moved = weighted_sum(frozen["w"], weights) - frozen["w"]
    assert (moved != 0).any() and (moved.abs() <= torch.finfo(torch.float32).eps * frozen["w"].abs()).all()


def test_gpa_is_applied_after_the_last_step_before_the_checkpoint_and_the_final_test(tmp_path, caltech_root,
                                                                                    tiny_clip_path, monkeypatch):
    from trainers.promptsrc import PromptSRC

    snapshots = []
    forward_backward = PromptSRC.forward_backward

    def recording(self, batch):
        summary = forward_backward(self, batch)
        if self.batch_idx + 1 == self.num_batches and self.epoch + 1 < self.max_epoch:
            snapshots.append({k: v.detach().clone() for k, v in self.trainable_module().named_parameters()})
        return summary

    monkeypatch.setattr(PromptSRC, "forward_backward", recording)
    last_step = PromptSRC.backward_and_update

    def keep_last(self, loss, names=None):
        last_step(self, loss, names)
        if self.epoch + 1 == self.max_epoch and self.batch_idx + 1 == self.num_batches:
            snapshots.append({k: v.detach().clone() for k, v in self.trainable_module().named_parameters()})

    monkeypatch.setattr(PromptSRC, "backward_and_update", keep_last)
    out = tmp_path / "run"
    trainer = build("PromptSRC", out, caltech_root, tiny_clip_path, "OPTIM.LR", 0.05, "TRAINER.PROMPTSRC.GPA_MEAN", 2,
                    flags=(), epochs=3, shots=1)
    weights = gaussian_epoch_weights(3, 2, 1)
    expected = official_gpa(snapshots, weights)
    final = dict(trainer.trainable_module().named_parameters())
    saved = torch.load(out / "VLPromptLearner" / "model.pth.tar-3", map_location="cpu", weights_only=False)
    for key, value in expected.items():
        assert torch.equal(final[key].detach(), value), key  # the model that was tested
        assert torch.equal(saved["state_dict"][key], value), key  # the checkpoint
        assert not torch.equal(value, snapshots[-1][key])  # not the last epoch's prompts


class Interrupted(Exception):
    pass


def test_a_resumed_promptsrc_run_keeps_its_running_average(tmp_path, caltech_root, tiny_clip_path, monkeypatch):
    from trainers.promptsrc import PromptSRC

    opts = ("OPTIM.LR", 0.05, "TRAINER.PROMPTSRC.GPA_MEAN", 2)
    whole = build("PromptSRC", tmp_path / "whole", caltech_root, tiny_clip_path, *opts, flags=(), epochs=3, shots=1)
    expected = whole.model(images()).detach()

    run_epoch = PromptSRC.run_epoch

    def crash_in_epoch_3(self):
        if self.epoch == 2:
            raise Interrupted
        run_epoch(self)

    monkeypatch.setattr(PromptSRC, "run_epoch", crash_in_epoch_3)
    with pytest.raises(Interrupted):
        build("PromptSRC", tmp_path / "resumed", caltech_root, tiny_clip_path, *opts, flags=(), epochs=3, shots=1)
    monkeypatch.setattr(PromptSRC, "run_epoch", run_epoch)
    resumed = build("PromptSRC", tmp_path / "resumed", caltech_root, tiny_clip_path, *opts, flags=(), epochs=3,
                    shots=1)
    assert resumed.resumed_from == 2
    assert torch.equal(resumed.model(images()).detach(), expected)


def test_gpa_whole_model_false_leaves_frozen_clip_as_loaded(tmp_path, caltech_root, tiny_clip_path):
    trainer = build("PromptSRC", tmp_path / "run", caltech_root, tiny_clip_path, "OPTIM.MAX_EPOCH", 3,
                    "TRAINER.PROMPTSRC.GPA_MEAN", 2, "TRAINER.PROMPTSRC.GPA_WHOLE_MODEL", False)
    frozen = {k: v.detach().clone() for k, v in trainer.frozen_tensors().items()}
    prompts = [{k: torch.randn(v.shape) for k, v in trainer.trainable_module().named_parameters()} for _ in range(3)]
    for epoch, p in enumerate(prompts):
        trainer.gpa.add_epoch(epoch, p)
    trainer.load_aggregate()
    assert all(torch.equal(frozen[k], v) for k, v in trainer.frozen_tensors().items())
    expected = official_gpa(prompts, trainer.gpa.weights)
    assert all(torch.equal(v.detach(), expected[k]) for k, v in trainer.trainable_module().named_parameters())
    # With the default (the official's whole-model average) the same step moves frozen CLIP.
    trainer.aggregate_frozen()
    assert any(not torch.equal(frozen[k], v) for k, v in trainer.frozen_tensors().items())


# --------------------------------------------------------------------------------------- self-regulation
def test_promptsrc_regulates_against_frozen_clip_on_the_same_batch(tmp_path, caltech_root, tiny_clip_path,
                                                                   monkeypatch):
    import trainers.promptsrc as promptsrc
    from vlprompt.clip_loader import load_clip
    from vlprompt.templates import IMAGENET_TEMPLATES

    calls = []
    encode_texts = promptsrc.encode_texts
    monkeypatch.setattr(promptsrc, "encode_texts", lambda *a, **k: calls.append(1) or encode_texts(*a, **k))
    trainer = build("PromptSRC", tmp_path / "run", caltech_root, tiny_clip_path, "TRAINER.PROMPTSRC.GPA_MEAN", 2,
                    flags=(), epochs=2, shots=4)
    assert len(calls) == len(IMAGENET_TEMPLATES) == 60  # once per class set, not per step (10 steps ran)

    model, clip_model = trainer.model, load_clip(tiny_clip_path).float()
    x = images()
    frozen_logits, frozen_image = model.frozen(x)
    with torch.no_grad():
        plain = F.normalize(clip_model.encode_image(x), dim=-1)
        names = model.classnames
        per_template = torch.stack([clip_model.encode_text(__import__("clip").tokenize(
            [t.format(n) for n in names])) for t in IMAGENET_TEMPLATES], dim=1).mean(dim=1)
        teacher_text = F.normalize(per_template, dim=-1)
    assert torch.allclose(frozen_image, plain, atol=1e-5)
    assert torch.allclose(model.teacher_text_features(), teacher_text, atol=1e-5)
    assert torch.allclose(frozen_logits, clip_model.logit_scale.exp() * plain @ teacher_text.t(), atol=1e-4)

    # The loss, term by term as the paper and the official code state it (KL summed, divided by B * C).
    label = torch.tensor([0, 1, 2, 3])
    logits, image_features, text_features = model.prompted(x)
    loss, _ = trainer.compute_loss(x, label)
    p_zs = F.softmax(frozen_logits, dim=1)
    kl = (p_zs * (F.log_softmax(frozen_logits, 1) - F.log_softmax(logits, 1))).sum() / logits.numel()
    expected = (F.cross_entropy(logits, label) + kl + 25 * (text_features - teacher_text).abs().mean()
                + 10 * (image_features - plain).abs().mean())
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


# ------------------------------------------------------------------------------------------------- DePT
def test_dept_fuses_on_the_trained_classes_and_uses_similarity_alone_on_new_ones(tmp_path, caltech_root,
                                                                                 tiny_clip_path):
    base = build("ExtrasLinearProbeCoOp", tmp_path / "base", caltech_root, tiny_clip_path)
    model = base.model.eval()
    with torch.no_grad():
        for p in base.trainable_module().parameters():  # away from the initialisation (FiLM is 1, 0 there)
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
        x = images()
        f, g = model.features(x, model.static_inputs())
        similarity = model.logit_scale.exp() * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).t()
        probe = (f * model.film_lp_img.scale + model.film_lp_img.bias) @ model.linear_probe_proj.weight.t() \
            + model.linear_probe_proj.bias
        assert torch.allclose(model(x), 0.3 * similarity + 0.7 * probe, atol=1e-5)
        model.fusion = False  # LINEAR_PROBE.TEST_TIME_FUSION False: the probe alone
        assert torch.allclose(model(x), probe, atol=1e-5)
        model.fusion = True

        # Training: (1 - 0.7) CE(similarity) + 0.7 CE(probe over each image's class text feature and the image).
        label = torch.tensor([1, 0, 3, 3])
        text = g * model.film_lp_text.scale + model.film_lp_text.bias
        rows = torch.cat([text[label], f * model.film_lp_img.scale + model.film_lp_img.bias])
        probe_2b = rows @ model.linear_probe_proj.weight.t() + model.linear_probe_proj.bias
        loss, _ = base.compute_loss(x, label)
        expected = 0.3 * F.cross_entropy(similarity, label) + 0.7 * F.cross_entropy(probe_2b, label.repeat(2))
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5)

    # The checkpoint, evaluated on new classes: no probe, CoOp's own logits with the trained context.
    base.save_model(1, str(tmp_path / "base"))
    new = build("ExtrasLinearProbeCoOp", tmp_path / "new", caltech_root, tiny_clip_path,
                flags=("--eval-only", "--model-dir", tmp_path / "base", "--load-epoch", "-1"), subsample="new")
    assert new.model.linear_probe_proj is None and new.loaded_checkpoint["epoch"] == 2
    assert torch.equal(new.trainable_module().prompt_learner.ctx, base.trainable_module().prompt_learner.ctx)
    with torch.no_grad():
        assert torch.equal(new.model.eval()(x), new.model.prompt_model(x))
    with pytest.raises(ConfigValueError, match="SUBSAMPLE_CLASSES 'new' on Caltech101 has none"):
        new.train()


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_dept_learns_at_staged_rates_both_warmed_up(tmp_path, caltech_root, tiny_clip_path, capsys):
    trainer = build("ExtrasLinearProbeMaPLe", tmp_path / "run", caltech_root, tiny_clip_path, "OPTIM.MAX_EPOCH", 4)
    groups = trainer.optim.param_groups
    prompt_ids = {id(p) for p in trainer.model.prompt_learner.parameters()}
    head_ids = {id(p) for m in (trainer.model.film_lp_img, trainer.model.film_lp_text, trainer.model.linear_probe_proj)
                for p in m.parameters()}
    assert [{id(p) for p in g["params"]} for g in groups] == [prompt_ids, head_ids]
    assert id(trainer.model.logit_scale) not in prompt_ids | head_ids
    base_lr, head_lr = 0.0035 * 6.5 * (1.0 / 6.5), 0.0035 * 6.5  # the official's arithmetic, as floats
    assert [g["initial_lr"] for g in groups] == [base_lr, head_lr]
    assert "lr: 0.0035, layers: ['prompt_learner']" in capsys.readouterr().out
    seen = []
    for _ in range(4):  # constant warm-up for one epoch, then Dassl's cosine per group from its own rate
        seen.append([g["lr"] for g in groups])
        trainer.sched.step()
    cosine = [(1 + math.cos(math.pi * e / 4)) / 2 for e in (0, 1, 2)]
    assert seen[0] == [1e-5, 1e-5]
    for lrs, c in zip(seen[1:], cosine):
        assert lrs == pytest.approx([base_lr * c, head_lr * c], rel=1e-12)


def test_dept_without_staged_lr_trains_everything_at_one_rate(tmp_path, caltech_root, tiny_clip_path, capsys):
    trainer = build("ExtrasLinearProbeCoOp", tmp_path / "run", caltech_root, tiny_clip_path, "OPTIM.STAGED_LR", False)
    assert [g["lr"] for g in trainer.optim.param_groups] == [1e-5]  # warm-up of the one group
    assert "DePT's head learns at OPTIM.LR like the prompts" in capsys.readouterr().out


def test_depts_keys_change_no_other_method(tmp_path, caltech_root, tiny_clip_path):
    from vlprompt.engine import get_cfg_default

    cfg = build_config(config_file=os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml"))
    dassl = get_cfg_default()
    for key in ("STAGED_LR", "NEW_LAYERS", "BASE_LR_MULT"):
        assert cfg.OPTIM[key] == dassl.OPTIM[key], key
    assert cfg.OPTIM.LR_EXP == 1.0  # Dassl's own staged learning rate, the neutral value
    assert cfg.TRAINER.LINEAR_PROBE == {"TYPE": "linear", "WEIGHT": 0.7, "TEST_TIME_FUSION": True}
    coop = build("CoOp", tmp_path / "coop", caltech_root, tiny_clip_path)
    assert len(coop.optim.param_groups) == 1 and coop.optim.param_groups[0]["initial_lr"] == coop.cfg.OPTIM.LR
    dept = build_config(config_file=os.path.join(REPO_ROOT, "configs/trainers", CONFIGS["ExtrasLinearProbeCoOp"][1]
                                                 + ".yaml"))
    assert (dept.OPTIM.STAGED_LR, list(dept.OPTIM.NEW_LAYERS), dept.OPTIM.BASE_LR_MULT, dept.OPTIM.LR_EXP) == \
        (True, ["linear_probe", "film"], 1.0, 6.5)


@pytest.mark.parametrize("name,opts,message", [
    ("ExtrasLinearProbeCoOp", ("TRAINER.LINEAR_PROBE.TYPE", "mlp"),
     "TRAINER.LINEAR_PROBE.TYPE 'mlp' is not allowed: expected one of linear, similarity"),
    ("ExtrasLinearProbeCoOp", ("TRAINER.LINEAR_PROBE.WEIGHT", 1.5),
     "TRAINER.LINEAR_PROBE.WEIGHT 1.5 is not allowed: expected a number between 0 and 1"),
    ("ExtrasLinearProbeCoOp", ("OPTIM.LR_EXP", 0.0), "OPTIM.LR_EXP 0.0 is not allowed: expected a number > 0"),
    ("PromptSRC", ("TRAINER.PROMPTSRC.GPA_STD", 0), "TRAINER.PROMPTSRC.GPA_STD 0 is not allowed: expected a number > 0"),
    ("PromptSRC", ("TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT", -1),
     "TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT -1 is not allowed: expected a number >= 0"),
])
def test_bad_values_are_refused_in_one_line_before_any_work(name, opts, message, tmp_path, caltech_root,
                                                            tiny_clip_path):
    with pytest.raises(ConfigValueError) as info:
        build(name, tmp_path / "run", caltech_root, tiny_clip_path, *opts)
    assert str(info.value) == message
    assert not (tmp_path / "run").exists()


def test_the_similarity_probe_and_cocoops_per_image_features(tmp_path, caltech_root, tiny_clip_path):
    """LINEAR_PROBE.TYPE similarity: the probe is the scaled cosine of the transformed features (no Linear); CoCoOp's
    per-image class features go through the same head."""
    trainer = build("ExtrasLinearProbeCoCoOp", tmp_path / "run", caltech_root, tiny_clip_path,
                    "TRAINER.LINEAR_PROBE.TYPE", "similarity")
    model = trainer.model.eval()
    assert model.linear_probe_proj is None and "linear_probe_proj" not in dict(trainer.trainable_module().named_children())
    with torch.no_grad():
        model.film_lp_img.scale.mul_(2.0)
        model.film_lp_text.bias.add_(0.5)
        x = images(2)
        f, g = model.features(x, None)
        assert g.shape[:2] == (2, trainer.num_classes)
        sim = model.prompt_model.logits_from_features(f, g)
        probe = model.prompt_model.logits_from_features(f * 2.0, g + 0.5)
        assert torch.allclose(model(x), 0.3 * sim + 0.7 * probe, atol=1e-5)


# ------------------------------------------------------------------------------------------- scripts
def test_the_scripts_train_test_and_tabulate_promptsrc_and_dept(tmp_path, caltech_root, tiny_clip_path):
    """scripts/promptsrc and scripts/coop_dept end to end from /: the originals' and DePT's runner trees, the test
    loading the epoch that was trained, and `vlprompt results base2new` tabulating both next to the papers."""
    from concurrent.futures import ThreadPoolExecutor

    from helpers import read_result, run_script
    from vlprompt.paper_numbers import default_paper_entry
    from vlprompt.results import base2new_tables

    out = tmp_path / "output"
    opts = fast_opts(tiny_clip_path, epochs=1)
    env = {"OMP_NUM_THREADS": "1", "SHOTS": "2"}

    def job(folder):
        run_script(f"{folder}/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=env)
        run_script(f"{folder}/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=env)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(job, ["promptsrc", "coop_dept"]))
    psrc = out / "base2new/{}/caltech101/shots_2/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx/seed1"
    dept = out / "base2new/coop_dept/{}/ExtrasLinearProbeCoOp/caltech101/shots2/vit_b16_ep10_bs4_lr35/seed1"
    for tree, folder in ((psrc, "VLPromptLearner"), (dept, "PromptLearner")):
        trained, tested = read_result(str(tree).format("train_base")), read_result(str(tree).format("test_new"))
        assert trained["subsample"] == "base" and tested["subsample"] == "new"
        assert tested["checkpoint"]["epoch"] == 1 and f"/{folder}/model.pth.tar-1" in tested["checkpoint"]["path"]
    tables = {t["method"]: t for t in base2new_tables(str(out), out=lambda *a: None)}
    assert set(tables) == {"PromptSRC", "ExtrasLinearProbeCoOp"}
    for table in tables.values():  # base from the training run's final test, new from the test run
        [row] = table["rows"]
        assert row["dataset"] == "Caltech101" and row["base"] is not None and row["new"] is not None
    # The tiny-CLIP options make these variants; the official settings are compared with the papers' numbers.
    assert default_paper_entry("PromptSRC", "x") == "PromptSRC"
    assert default_paper_entry("ExtrasLinearProbeCoOp", "x") == "CoOp+DePT"


def test_dept_evaluated_on_imagenet_a_keeps_the_probe_rows_of_its_classes(tmp_path, tiny_clip_path):
    """A probe trained on ImageNet (one row per line of classnames.txt) evaluated on ImageNet-A: the official rule
    keeps the rows whose class folder ImageNet-A has, in classnames.txt order."""
    from vlprompt.data.imagenet import read_classnames
    from vlprompt.testing.fake_data import make_dataset

    root = tmp_path / "data"
    make_dataset("ImageNetA", str(root))
    node, config = CONFIGS["ExtrasLinearProbeCoOp"]

    def evaluate(*flags):
        return run_train(["--root", root, "--seed", 1, "--trainer", "ExtrasLinearProbeCoOp",
                          "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/imagenet_a.yaml"),
                          "--config-file", os.path.join(REPO_ROOT, "configs/trainers", f"{config}.yaml"),
                          "--output-dir", tmp_path / f"out{len(flags)}", *flags, *fast_opts(tiny_clip_path),
                          f"TRAINER.{node}.PREC", "fp32"])

    template = evaluate("--no-train")
    assert template.model.head_active and template.num_classes == 4  # "ImageNet" in the name, SUBSAMPLE all
    wnids = list(read_classnames(str(root / "imagenet-adversarial" / "classnames.txt")))
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) for k, v in template.trainable_module().state_dict().items()}
    state["linear_probe_proj.weight"] = torch.randn(len(wnids), template.model.linear_probe_proj.in_features,
                                                    generator=g)
    state["linear_probe_proj.bias"] = torch.randn(len(wnids), generator=g)
    os.makedirs(tmp_path / "model" / "PromptLearner")
    torch.save({"state_dict": state, "epoch": 10}, tmp_path / "model" / "PromptLearner" / "model.pth.tar-10")
    evaluated = evaluate("--eval-only", "--model-dir", tmp_path / "model", "--load-epoch", "10")
    present = set(os.listdir(root / "imagenet-adversarial" / "imagenet-a"))
    keep = [i for i, w in enumerate(wnids) if w in present]
    assert len(keep) == 4 < len(wnids)
    assert torch.equal(evaluated.model.linear_probe_proj.weight, state["linear_probe_proj.weight"][keep])
    assert torch.equal(evaluated.model.linear_probe_proj.bias, state["linear_probe_proj.bias"][keep])
