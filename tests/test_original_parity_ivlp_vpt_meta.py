"""IVLP (also language-only), VPT, Meta_B2N and Meta_DG trained from the same seed as the original code
end with the original code's model: recorded facts from running the original code.

How the expected values (ORIGINAL below) were produced, so that anyone can regenerate them:
- code: Dassl.pytorch (KaiyangZhou), multimodal-prompt-learning (muzairkhattak; IVLP, VPT) and
  2024-TIP-MetaPrompt (Vill-Lab; Meta_B2N, Meta_DG), each its repository's newest snapshot, run from its
  own root with its own `clip` package and train.py, on torch 2.x on the CPU. Run-time fixes only, in
  local copies: Dassl's warmup schedulers called without the `verbose` argument, torch.load with
  weights_only=False, stand-ins for the unused tensorboard/wilds/pandas imports and a plain macro-F1 in
  place of sklearn's; `.cuda()` made a no-op (the VPT and MetaPrompt code call it unconditionally);
  clip._MODELS["tiny"] pointing at the tiny CLIP below and clip._download returning that path.
- CLIP: `vlprompt.testing.tiny_clip.save_tiny_clip(path)` (seed 0: ViT, 12 layers, text width 64, vision
  width 128, embed 48, 32 px, patch 8; the original's build_model reads the same widths from it), or for
  IVLP_64x16 `save_tiny_clip(path, vision_width=64)`: both towers 64 wide, one attention head each.
- data: a fresh root with `make_caltech101(root)` (IVLP, VPT, Meta_B2N) or `make_pacs(root)` (Meta_DG);
  IVLP_64x16: `make_caltech101(root, images_per_class=40)` (20 train images per class, so 16 shots of the 5
  base classes are 20 steps per epoch, and 12 test images per class).
- command: python train.py --root ROOT --seed 1 --trainer T --dataset-config-file D --config-file C
  --output-dir OUT MODEL.BACKBONE.NAME tiny INPUT.SIZE "(32, 32)" DATALOADER.NUM_WORKERS 0 USE_CUDA False
  OPTIM.MAX_EPOCH 2 TRAIN.PRINT_FREQ 1000 DATALOADER.TEST.BATCH_SIZE 50 TRAINER.<NODE>.PREC fp32 + CASES'
  options, with the official configs (MetaPrompt's dataset configs: configs/datasets/b2n/caltech101.yaml,
  which equals ours, and configs/datasets/dg/pacs.yaml, which vlprompt carries at the same path).
- recorded: the trainable tensors right after build_model (sum, then the first 3 values), the "loss"
  of every forward_backward (IVLP, VPT), or for MetaPrompt (whose logged loss is the last meta-test
  loss) the sums of its two prompt tensors after every step, and the logits of the first 6 test images
  after training (trainer.model_inference on the first test batch, model in eval mode); IVLP_64x16: the
  logits of rows 0, 12, .., 48 of that batch (the first test image of each class).
- IVLP_64x16 was recorded on an Intel Xeon (AVX512) with torch 2.14.1, from the MaPLe repository at 69bce21
  and Dassl.pytorch's newest snapshot; the other cases earlier, on another machine.

The tolerances are those of recorded facts of a chaotic computation. The original casts every prompt with
`.half()` where it enters CLIP, so the gradient of each sequence's prompts is rounded to float16 on the way
back: a difference in the last bits of fp32 (~1e-7) sometimes becomes a whole float16 step (5e-4 relative),
and SGD carries it into the model. vlprompt's IVLP with TEXT_FULL_CONTEXT (default) runs the original's
arithmetic bit for bit (re-running the original code here gives all of IVLP_64x16's numbers exactly, and
`test_ivlp_text_side_is_the_originals_arithmetic` checks the text side in this process), but the recorded
numbers themselves depend on the CPU's kernels: the original's own run of the IVLP case here is 4.4e-4
away from the logits below, recorded elsewhere, and with ATEN_CPU_CAPABILITY=avx2 IVLP_64x16 ends 1.2e-3
away (its losses 1.3e-4). Before TEXT_FULL_CONTEXT (class prompts cut after their EOT token: other CPU
attention blocks, so other last bits) IVLP_64x16 ended 3.7e-3 away (issue #24), which its tolerance,
2e-3, refuses.
"""
import os

import pytest
import torch

from helpers import REPO_ROOT, run_train
from trainers.independentVL import IVLPCLIP
from vlprompt.clip_loader import tokenize
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.testing.fake_data import make_caltech101
from vlprompt.testing.tiny_clip import save_tiny_clip
from vlprompt.testing.fake_dg_data import make_pacs

CASES = {
    "IVLP": ("IVLP", "IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", "caltech101",
             ["DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base"]),
    "IVLP_lang": ("IVLP", "IVLP", "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only", "caltech101",
                  ["DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base"]),
    "VPT": ("VPT", "VPT", "VPT/vit_b16_c2_ep5_batch4_4", "caltech101",
            ["DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base"]),
    "Meta_B2N": ("Meta_B2N", "META", "Meta_B2N/vit_b16", "caltech101",
                 ["DATASET.NUM_SHOTS", "4", "DATASET.SUBSAMPLE_CLASSES", "base", "DATALOADER.TRAIN_X.BATCH_SIZE", "8"]),
    "Meta_DG": ("Meta_DG", "META", "Meta_DG/vit_b16", "dg/pacs",
                ["DATASET.NUM_SHOTS", "2", "DATASET.ID", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8"]),
    # Both towers 64 wide (one head each), 16 shots: 20 steps per epoch, so 20 at the full learning rate.
    "IVLP_64x16": ("IVLP", "IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", "caltech101",
                   ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"]),
}
# Where a case departs from the defaults: the tiny CLIP's widths, images per class, the test-batch rows whose
# logits are compared, and the largest logit difference allowed (see the module docstring).
SETUPS = {"IVLP_64x16": {"clip": {"vision_width": 64}, "images_per_class": 40, "rows": [0, 12, 24, 36, 48],
                         "logit_tolerance": 2e-3}}
DEFAULT_SETUP = {"clip": {}, "images_per_class": 12, "rows": list(range(6)), "logit_tolerance": 1e-3}
# The original's tensor names -> the prompt learner's.
OUR_NAMES = {
    "IVLP": {"prompt_learner.ctx": "ctx", "image_encoder.VPT": "vision.input_prompts",
             "text_encoder.transformer.resblocks.11.VPT_shallow": "text_layer_prompts.11"},
    "VPT": {"image_encoder.VPT": "input_prompts",
            "image_encoder.transformer.resblocks.11.VPT_shallow": "layer_prompts.11"},
    "Meta": {"prompt_learner.ctx": "text_ctx", "vision_prompt_learner.ctx": "vision_ctx"},
}

# Recorded from the original code as described in the module docstring.
ORIGINAL = {'IVLP': {'init': {'prompt_learner.ctx': [-0.1551689, -0.00196217, -0.03108071, -0.00831502],
                   'image_encoder.VPT': [-0.3648585, 0.00986406, -0.02634737, -0.02024314],
                   'text_encoder.transformer.resblocks.11.VPT_shallow': [0.0540936, -0.03410104, -0.02258839,
                                                                         -0.0382378]},
          'images': ['Faces/image_0005.jpg', 'Faces/image_0001.jpg', 'Faces/image_0012.jpg', 'Faces/image_0007.jpg',
                     'Leopards/image_0011.jpg', 'Leopards/image_0005.jpg'],
          'logits': [[2.19223, 2.14135, 1.46672, 1.52064, 1.94422], [2.17887, 2.12447, 1.45345, 1.50706, 1.92672],
                     [2.19575, 2.13906, 1.47629, 1.52506, 1.94073], [2.18645, 2.13422, 1.46876, 1.52186, 1.93708],
                     [1.11284, 1.32708, 0.84067, 1.10654, 1.21268], [1.13823, 1.34947, 0.87233, 1.1345, 1.23435]],
          'losses': [1.876261, 1.018543, 2.209199, 1.240193, 1.866171, 2.083716, 1.861408, 1.62506, 1.573788,
                     1.559964]},
 'IVLP_lang': {'init': {'prompt_learner.ctx': [-0.2999064, -0.00196217, -0.03108071, -0.00831502],
                        'text_encoder.transformer.resblocks.11.VPT_shallow': [-0.1568548, -0.01293102, -0.00951885,
                                                                              -0.034626]},
               'images': ['Faces/image_0005.jpg', 'Faces/image_0001.jpg', 'Faces/image_0012.jpg',
                          'Faces/image_0007.jpg', 'Leopards/image_0011.jpg', 'Leopards/image_0005.jpg'],
               'logits': [[4.66435, 3.769, 3.51678, 3.25925, 2.02161], [4.62573, 3.73243, 3.48161, 3.22333, 1.98839],
                          [4.64513, 3.75463, 3.51732, 3.24966, 2.00302], [4.66637, 3.78691, 3.5468, 3.28816, 2.05128],
                          [4.64393, 4.44801, 4.44028, 4.0254, 3.20663],
                          [4.64604, 4.45228, 4.44909, 4.03071, 3.20286]],
               'losses': [1.98231, 2.107859, 1.648491, 1.841708, 1.634916, 2.175975, 0.743587, 1.954534, 1.551582,
                          1.495747]},
 'VPT': {'init': {'image_encoder.VPT': [-0.1038864, 0.00986406, -0.02634737, -0.02024314],
                  'image_encoder.transformer.resblocks.11.VPT_shallow': [1.2019864, -0.01183419, 0.00767698,
                                                                         0.01536231]},
         'images': ['Faces/image_0005.jpg', 'Faces/image_0001.jpg', 'Faces/image_0012.jpg', 'Faces/image_0007.jpg',
                    'Leopards/image_0011.jpg', 'Leopards/image_0005.jpg'],
         'logits': [[-0.92928, -0.99838, -1.07784, -1.27003, -0.78581],
                    [-0.91626, -0.98688, -1.07409, -1.26252, -0.77388],
                    [-0.89324, -0.96481, -1.03821, -1.23215, -0.76019],
                    [-0.93087, -1.00538, -1.07163, -1.26814, -0.79325],
                    [-0.44557, -0.48719, -0.37079, -0.63868, 0.04597],
                    [-0.41371, -0.46366, -0.33513, -0.61132, 0.05589]],
         'losses': [1.719278, 1.596366, 1.880671, 1.653651, 1.696007, 1.741647, 1.757695, 1.723275, 1.630269,
                    1.592497]},
 'Meta_B2N': {'init': {'prompt_learner.ctx': [0.5816881, -0.02636904, 0.0062771, 0.00991077],
                       'vision_prompt_learner.ctx': [-2.2253634, 0.02734242, -0.00270199, -0.00023604]},
              'images': ['Faces/image_0005.jpg', 'Faces/image_0001.jpg', 'Faces/image_0012.jpg',
                         'Faces/image_0007.jpg', 'Leopards/image_0011.jpg', 'Leopards/image_0005.jpg'],
              'logits': [[-0.51665, -0.47321, -0.59715, -0.40797, -0.52718],
                         [-0.49994, -0.45594, -0.59589, -0.3955, -0.50963],
                         [-0.48836, -0.43894, -0.55798, -0.36866, -0.49283],
                         [-0.51707, -0.46943, -0.5674, -0.39391, -0.52134],
                         [0.12614, 0.32501, 0.85251, 0.54186, 0.4452], [0.16804, 0.36534, 0.9108, 0.59, 0.48104]],
              'step_sums': [[0.581688, -2.225363], [0.581688, -2.225363], [0.581683, -2.225359],
                            [0.581677, -2.225353]]},
 'Meta_DG': {'init': {'prompt_learner.ctx': [-0.9166897, -0.02636904, 0.0062771, 0.00991077],
                      'vision_prompt_learner.ctx': [-0.7590188, -0.01791862, -0.00392297, 0.00688208]},
             'images': ['art_painting/dog/pic_001.jpg', 'art_painting/dog/pic_002.jpg',
                        'art_painting/dog/pic_003.jpg', 'art_painting/elephant/pic_004.jpg',
                        'art_painting/elephant/pic_005.jpg', 'art_painting/elephant/pic_006.jpg'],
             'logits': [[-0.15399, -0.74746, -0.34866], [-0.14872, -0.74277, -0.34378],
                        [-0.13516, -0.72575, -0.33107], [-0.38008, -0.32538, -0.49416],
                        [-0.38409, -0.32782, -0.49875], [-0.39255, -0.3397, -0.50603]],
             'step_sums': [[-0.91669, -0.759019], [-0.91669, -0.759019], [-0.916688, -0.759007],
                           [-0.916686, -0.758994]]},
 'IVLP_64x16': {'init': {'prompt_learner.ctx': [-0.1606515, 0.02740634, 0.00070817, -0.0227686],
                         'image_encoder.VPT': [0.094828, -0.0066593, 0.01787497, 0.01707505],
                         'text_encoder.transformer.resblocks.11.VPT_shallow': [0.0862575, -0.01338825, 0.00766202,
                                                                               0.01463524]},
                'images': ['Faces/image_0029.jpg', 'Leopards/image_0027.jpg', 'Motorbikes/image_0007.jpg',
                           'accordion/image_0024.jpg', 'airplanes/image_0037.jpg'],
                'logits': [[-0.19638, -2.76672, -2.90315, -3.24543, -2.62441],
                           [4.59021, 4.65447, 4.89366, 4.63343, 4.83661],
                           [4.46295, 5.05061, 5.62379, 5.2368, 5.22667],
                           [5.24077, 6.38634, 6.82056, 6.56979, 6.49696],
                           [5.28237, 6.66971, 6.89881, 6.76854, 6.71037]],
                'losses': [1.901975, 1.688351, 1.363403, 1.898278, 1.789627, 1.885806, 1.888518, 1.357983, 1.573179,
                           1.47159, 1.952234, 1.085878, 1.649379, 1.366627, 1.918, 1.271019, 1.912586, 1.908631,
                           1.540144, 1.449498, 1.36864, 2.306566, 1.475995, 1.438982, 1.530854, 1.583286, 1.445656,
                           1.387418, 1.234809, 1.294055, 1.432023, 1.194041, 1.487647, 1.149609, 1.439265, 0.912104,
                           1.812138, 1.451685, 1.672514, 1.551715]}}


def our_name(case, name):
    return OUR_NAMES["Meta" if case.startswith("Meta") else case.split("_")[0]][name]


def setup(case):
    return {**DEFAULT_SETUP, **SETUPS.get(case, {})}


def train_like_the_original(case, clip_path, root, monkeypatch):
    trainer_name, node, config, data_config, options = CASES[case]
    cls = TRAINER_REGISTRY.get(trainer_name)
    seen = {"steps": []}

    def prompts(trainer):
        return dict(trainer.model.prompt_learner.named_parameters())

    build_model, forward_backward = cls.build_model, cls.forward_backward

    def recording_build_model(self):
        build_model(self)
        seen["init"] = {k: v.detach().clone() for k, v in prompts(self).items()}

    def recording_forward_backward(self, batch):
        summary = forward_backward(self, batch)
        seen["steps"].append((summary["loss"], {k: float(v.detach().double().sum()) for k, v in prompts(self).items()}))
        return summary

    monkeypatch.setattr(cls, "build_model", recording_build_model)
    monkeypatch.setattr(cls, "forward_backward", recording_forward_backward)
    argv = ["--root", root, "--seed", "1", "--trainer", trainer_name,
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs", "datasets", f"{data_config}.yaml"),
            "--config-file", os.path.join(REPO_ROOT, "configs", "trainers", f"{config}.yaml"),
            "--output-dir", os.path.join(root, "output"),
            "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
            "USE_CUDA", "False", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "1000",
            "DATALOADER.TEST.BATCH_SIZE", "50", f"TRAINER.{node}.PREC", "fp32", *options]
    trainer = run_train(argv)
    trainer.set_model_mode("eval")
    batch = next(iter(trainer.test_loader))
    rows = setup(case)["rows"]
    with torch.no_grad():
        seen["logits"] = trainer.model(batch["img"][rows].to(trainer.device)).float()
    seen["images"] = ["/".join(batch["impath"][r].split(os.sep)[-2:]) for r in rows]
    return seen


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_gives_the_original_model(case, tiny_clip_path, tmp_path, monkeypatch):
    root = str(tmp_path / "data")
    options = setup(case)
    if CASES[case][3] == "dg/pacs":
        make_pacs(root)
    else:
        make_caltech101(root, images_per_class=options["images_per_class"])
    if options["clip"]:
        tiny_clip_path = save_tiny_clip(tmp_path / "tiny-vit.pt", **options["clip"])
    seen = train_like_the_original(case, tiny_clip_path, root, monkeypatch)
    expected = ORIGINAL[case]

    # The initial prompts are the original's numbers (the random draws happen in its order).
    for name, (total, *first) in expected["init"].items():
        value = seen["init"][our_name(case, name)].double()
        assert float(value.sum()) == pytest.approx(total, abs=1e-6), name
        assert value.flatten()[:3].tolist() == pytest.approx(first, abs=1e-7), name

    # Every step: the same loss (IVLP, VPT) or the same prompts afterwards (MetaPrompt: both updates).
    if "losses" in expected:
        assert [loss for loss, _ in seen["steps"]] == pytest.approx(expected["losses"], abs=2e-4)
    else:
        assert len(seen["steps"]) == len(expected["step_sums"])
        names = [our_name(case, n) for n in expected["init"]]
        for (_, sums), want in zip(seen["steps"], expected["step_sums"]):
            assert [sums[n] for n in names] == pytest.approx(want, abs=1e-4)

    # The trained model: the original's final-test logits for the same images.
    assert seen["images"] == ["/".join(p.split("/")[-2:]) for p in expected["images"]]
    assert (seen["logits"] - torch.tensor(expected["logits"])).abs().max().item() < options["logit_tolerance"]


def originals_ivlp_text_features(clip_model, texts, ctx, deep):
    """The original IVLP's text side as its code computes it (reference §C.3, C.5), written here: all 77
    token positions through CLIP's own blocks (with their causal mask), ctx in rows 1..n of the input, and
    before block i the prompts deep[i], expanded over the sequences and cast with `.half()`, concatenated
    in place of rows 1..n; ln_final, the EOT row, text_projection."""
    tokens = tokenize(texts)
    n = ctx.shape[0]
    embedding = clip_model.token_embedding(tokens)
    x = torch.cat([embedding[:, :1], ctx.expand(len(texts), -1, -1), embedding[:, 1 + n:]], dim=1)
    x = (x + clip_model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(clip_model.transformer.resblocks):
        if i in deep:
            prompts = deep[i].expand(len(texts), -1, -1).permute(1, 0, 2).half()
            x = torch.cat([x[:1], prompts, x[1 + n:]], dim=0)
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(len(texts)), tokens.argmax(dim=-1)] @ clip_model.text_projection


def test_ivlp_text_side_is_the_originals_arithmetic(tiny_clip):
    """With the whole context (TEXT_FULL_CONTEXT, the IVLP trainer's default) the text features and the
    prompts' gradients are the original's bit for bit, on whatever CPU runs this. Class prompts cut after
    their EOT token compute the same function, but the CPU attention kernel rounds a row by blocks that
    depend on the sequence length, and the float16-rounded gradients carry that into training (issue #24)."""
    model = IVLPCLIP(tiny_clip, ["face", "leopard", "grand_piano", "airplane"], 2, 2, "a photo of a", 12, 12,
                     round_fp16=True, full_context=True)
    learner = model.prompt_learner
    torch.manual_seed(0)
    with torch.no_grad():
        for p in learner.text_layer_prompts.values():
            p.normal_(std=0.5)  # large enough that each layer's prompts change the features
    weights = torch.randn(4, tiny_clip.text_projection.shape[1])
    prompts, deep_text, _, _ = learner()
    ours = model.text_encoder(prompts, learner.eot_indices, deep_text, n_ctx=2)
    deep = {int(i): p for i, p in learner.text_layer_prompts.items()}
    original = originals_ivlp_text_features(tiny_clip, learner.class_prompts.prompt_texts, learner.ctx, deep)
    assert torch.equal(ours, original)
    parameters = [learner.ctx, *learner.text_layer_prompts.values()]
    for a, b in zip(torch.autograd.grad((ours * weights).sum(), parameters),
                    torch.autograd.grad((original * weights).sum(), parameters)):
        assert torch.equal(a, b)
