"""The original repositories' checkpoint layout for MaPLe, IVLP and VPT, in both directions.

The originals register their whole CustomCLIP (frozen CLIP included) and save its full state dict in
Dassl's checkpoint (`<run>/<folder>/model.pth.tar-N`: state_dict, epoch, optimizer, scheduler,
val_result, plus the `checkpoint` pointer file); their `--eval-only` loads it with strict=False, after
dropping prompt_learner.token_prefix/token_suffix. vlprompt's prompt learners hold only the trainable
tensors, under the originals' names where the original kept them in its prompt learner and under the
layer they enter where the original kept them inside CLIP's modules (IVLP, VPT). `ORIGINAL_KEYS` is the
one statement of that correspondence: `from_original_state` reads the originals' files (released
checkpoints, `--model-dir`), `to_original_state` / `export_run` write them (`vlprompt export-checkpoint`).
"""
import os
import re

from .errors import UserError

# registered trainer -> the original's checkpoint folder (its registered model name)
ORIGINAL_FOLDERS = {"MaPLe": "MultiModalPromptLearner", "IVLP": "VLPromptLearner", "VPT": "prompt_learner",
                    "PromptSRC": "VLPromptLearner"}
# registered trainer -> [(our prompt-learner key, the original's full-model key)], {i}: a block index.
# Keys that match no pattern are the original's prompt_learner.<same name>.
ORIGINAL_KEYS = {
    "MaPLe": [],
    "IVLP": [("text_layer_prompts.{i}", "text_encoder.transformer.resblocks.{i}.VPT_shallow"),
             ("vision.input_prompts", "image_encoder.VPT"),
             ("vision.layer_prompts.{i}", "image_encoder.transformer.resblocks.{i}.VPT_shallow")],
    "VPT": [("input_prompts", "image_encoder.VPT"),
            ("layer_prompts.{i}", "image_encoder.transformer.resblocks.{i}.VPT_shallow")],
}
ORIGINAL_KEYS["PromptSRC"] = ORIGINAL_KEYS["IVLP"]  # IVLP's prompts, in the same places
REBUILT_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix")  # per class: never carried over
# Frozen modules an original keeps inside its prompt learner (PromptSRC's copy of CLIP's image tower, its teacher).
FROZEN_PROMPT_LEARNER_PARTS = ("prompt_learner.ZS_image_encoder.",)
ORIGINAL_MODEL_PREFIXES = ("prompt_learner.", "image_encoder.", "text_encoder.")
# Frozen CLIP tensors a full-model checkpoint holds, and where this model keeps them.
BACKBONE_FINGERPRINT = {"image_encoder.conv1.weight": "image_encoder.visual.conv1.weight",
                        "image_encoder.positional_embedding": "image_encoder.visual.positional_embedding",
                        "text_encoder.text_projection": "text_encoder.text_projection"}


class ExportError(UserError, ValueError):
    pass


def _pattern(template):
    return re.compile(re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)") + r"\Z")


def _translate(method, key, forward):
    for ours, original in ORIGINAL_KEYS[method]:
        source, target = (ours, original) if forward else (original, ours)
        match = _pattern(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None


def to_original_key(method, key):
    """Our prompt-learner key -> the original's full-model key."""
    return _translate(method, key, forward=True) or "prompt_learner." + key


def from_original_key(method, key):
    """The original's full-model key -> our prompt-learner key, or None for what we do not keep (frozen
    CLIP, logit_scale, the per-class token_prefix/token_suffix buffers)."""
    if key in REBUILT_BUFFERS or key.startswith(FROZEN_PROMPT_LEARNER_PARTS):
        return None
    if key.startswith("prompt_learner."):
        return key[len("prompt_learner."):]
    return _translate(method, key, forward=False)


def is_full_model_state(state):
    """True for the originals' checkpoints, which hold the whole CustomCLIP (or, exported, its prompts)."""
    return any(k.startswith(ORIGINAL_MODEL_PREFIXES) or k == "logit_scale" for k in state)


def check_same_backbone(state, model):
    """Fail if a full-model checkpoint's frozen CLIP has other shapes than the loaded backbone's
    (e.g. ViT-B/16 prompts evaluated on ViT-B/32, whose prompt shapes are the same)."""
    from .trainer import CheckpointMismatch

    ours = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs backbone {tuple(ours[mine].shape)}"
             for k, mine in BACKBONE_FINGERPRINT.items()
             if k in state and mine in ours and tuple(state[k].shape) != tuple(ours[mine].shape)]
    if wrong:
        raise CheckpointMismatch(f"The checkpoint was trained on another CLIP backbone than MODEL.BACKBONE.NAME "
                                 f"({'; '.join(wrong)}); set MODEL.BACKBONE.NAME to the one it was trained with.")


def from_original_state(method, state, model):
    """An original full-model state dict -> the prompt-learner state of `model` (missing or foreign
    prompts then fail when loading)."""
    check_same_backbone(state, model)
    adapted = {}
    for key, value in state.items():
        name = from_original_key(method, key)
        if name is not None:
            adapted[name] = value
    return adapted


def original_frozen_weights(state, model):
    """{tensor of `model`: the original checkpoint's value} for frozen CLIP's towers and logit_scale (the
    original's image_encoder.* is CLIP's visual, its text_encoder.* the text tower without the token embedding);
    prompts and the original's own extra modules are left out."""
    ours = dict(model.named_parameters())
    found = {}
    for key, value in state.items():
        if key == "logit_scale":
            name = key
        elif key.startswith("image_encoder."):
            name = "image_encoder.visual." + key[len("image_encoder."):]
        elif key.startswith("text_encoder."):
            name = key
        else:
            continue
        if name in ours and tuple(ours[name].shape) == tuple(value.shape) and not ours[name].requires_grad:
            found[ours[name]] = value
    return found


def to_original_state(method, state):
    """Our prompt-learner state -> the original's full-model keys (the trainable tensors only: the
    original's strict=False load keeps its frozen CLIP)."""
    return {to_original_key(method, key): value for key, value in state.items()}


def export_run(run_dir, method, out_dir, epoch=None):
    """Write run_dir's checkpoint of `epoch` (default: the one its `checkpoint` file names) as the original
    writes it: <out_dir>/<original folder>/model.pth.tar-N and the `checkpoint` pointer. Returns the path."""
    from .fileio import atomic_write, load_torch_file, torch_save_atomic

    if method not in ORIGINAL_FOLDERS:
        raise ExportError(f"{run_dir}: trainer {method} has no original checkpoint layout to export to "
                          f"(supported: {', '.join(ORIGINAL_FOLDERS)}); CoOp and CoCoOp checkpoints load as they are")
    folder = os.path.join(run_dir, ORIGINAL_FOLDERS[method])  # vlprompt keeps the originals' folder names
    if epoch is None:
        pointer = os.path.join(folder, "checkpoint")
        if not os.path.isfile(pointer):
            raise ExportError(f"{run_dir} holds no checkpoint ({pointer} is missing): train the run first")
        with open(pointer) as f:
            name = f.readline().strip()
    else:
        name = f"model.pth.tar-{epoch}"
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ExportError(f"{run_dir} holds no checkpoint {path}")
    checkpoint = load_torch_file(path, what="vlprompt checkpoint")
    state = checkpoint["state_dict"]
    if is_full_model_state(state):
        raise ExportError(f"{path} is already in the original's layout")
    exported = {"state_dict": to_original_state(method, state), "epoch": checkpoint.get("epoch"),
                "optimizer": checkpoint.get("optimizer"), "scheduler": checkpoint.get("scheduler"),
                "val_result": checkpoint.get("val_result")}
    target_dir = os.path.join(out_dir, ORIGINAL_FOLDERS[method])
    target = os.path.join(target_dir, f"model.pth.tar-{checkpoint.get('epoch')}")
    os.makedirs(target_dir, exist_ok=True)
    torch_save_atomic(exported, target)
    with atomic_write(os.path.join(target_dir, "checkpoint"), "w") as f:
        f.write(os.path.basename(target) + "\n")
    return target


def trainer_of_run(run_dir):
    """The registered trainer that wrote run_dir: from its result.json, else from its checkpoint folder."""
    import json

    result = os.path.join(run_dir, "result.json")
    if os.path.isfile(result):
        with open(result) as f:
            return json.load(f).get("method")
    found = [m for m, folder in ORIGINAL_FOLDERS.items() if os.path.isdir(os.path.join(run_dir, folder))]
    if len(found) == 1 and found[0] != "VPT":  # prompt_learner/ is also CoOp's and CoCoOp's
        return found[0]
    raise ExportError(f"{run_dir} has no result.json to tell which trainer wrote it: pass --trainer")
