"""Invocations of every script in scripts/ (arguments, environment variables, earlier state) whose train.py
command lines and error messages were recorded from the bash implementation of the protocols, before the
scripts became thin callers of vlprompt.protocols: tests/data/script_command_lines.json. The scripts must
keep running exactly those command lines (tests/test_script_callers.py).

A case is (script, args, env, prepare): `prepare` names earlier cases whose recorded --output-dir's are
made to look like finished training runs (saved epoch 7) before the case runs. Paths in args are written
with $DATA, $OUTPUT, $WEIGHTS (released-weights trees, see make_weights) and $REPO.
"""
import os

OPTS = ["OPTIM.LR", "0.01", "TRAIN.PRINT_FREQ", "5", "INPUT.SIZE", "(32, 32)"]  # a variant, a bookkeeping key
B2N = ["cocoop", "maple", "independent-vlp", "language-prompting", "vpt", "metaprompt", "copl"]
XD_WITH_DATASET = ["maple", "independent-vlp", "language-prompting", "vpt"]  # xd_train.sh DATASET SEED

CASES = []


def case(name, script, *args, env=None, prepare=()):
    CASES.append({"name": name, "script": script, "args": [str(a) for a in args], "env": env or {},
                  "prepare": list(prepare)})


for m in B2N:
    case(f"{m}-b2n-train", f"{m}/base2new_train.sh", "caltech101", 1, *OPTS)
    case(f"{m}-b2n-test", f"{m}/base2new_test.sh", "caltech101", 1, *OPTS, prepare=[f"{m}-b2n-train"])
env = {"VARIANT": "mine", "TRAINER": "CoOp", "CFG": "vit_b16_ctxv1", "SHOTS": "8", "LOADEP": "2"}
case("cocoop-b2n-train-env", "cocoop/base2new_train.sh", "dtd", 3, *OPTS, env=env)
case("cocoop-b2n-test-env", "cocoop/base2new_test.sh", "dtd", 3, *OPTS, env=env, prepare=["cocoop-b2n-train-env"])
case("maple-b2n-train-plain", "maple/base2new_train.sh", "eurosat", 2, *OPTS, env={"VARIANT": ""})
case("maple-b2n-test-plain", "maple/base2new_test.sh", "eurosat", 2, *OPTS, env={"VARIANT": ""},
     prepare=["maple-b2n-train-plain"])
case("maple-b2n-train-noopts", "maple/base2new_train.sh", "ucf101", 1)

for m in XD_WITH_DATASET:
    case(f"{m}-xd-train", f"{m}/xd_train.sh", "imagenet", 1, *OPTS)
    case(f"{m}-xd-test", f"{m}/xd_test.sh", "caltech101", 1, *OPTS, prepare=[f"{m}-xd-train"])
case("cocoop-xd-train", "cocoop/xd_train.sh", 2, *OPTS)
case("cocoop-xd-test", "cocoop/xd_test.sh", "imagenet_a", 2, *OPTS, prepare=["cocoop-xd-train"])
case("copl-xd-train", "copl/xd_train.sh", 1, *OPTS, env={"SOURCE_DATASET": "caltech101"})
case("copl-xd-test", "copl/xd_test.sh", "dtd", 1, *OPTS, env={"SOURCE_DATASET": "caltech101"},
     prepare=["copl-xd-train"])
case("maple-xd-train-source", "maple/xd_train.sh", "caltech101", 1, env={"SHOTS": "4"})
case("maple-xd-test-source", "maple/xd_test.sh", "dtd", 1, env={"SOURCE_DATASET": "caltech101", "SHOTS": "4"},
     prepare=["maple-xd-train-source"])

case("coop-main", "coop/main.sh", "caltech101", "rn50_ep50", "end", 16, 1, "False", *OPTS, env={"SEEDS": "1 2"})
case("coop-main-middle", "coop/main.sh", "dtd", "vit_b16", "middle", 4, 8, "True")
case("coop-main-imagenet", "coop/main.sh", "imagenet", "rn50_ep50", "end", 16, 16, "False", *OPTS)
case("coop-eval", "coop/eval.sh", "imagenet_r", "rn50_ep50", *OPTS, env={"SEEDS": "1 3"},
     prepare=["coop-main-imagenet"])
case("zsclip", "zsclip/zeroshot.sh", "caltech101", "vit_b16", *OPTS)
case("zsclip-ensemble", "zsclip/zeroshot.sh", "imagenet", "rn50", env={"TRAINER": "ZeroshotCLIP2"})
case("metaprompt-dg", "metaprompt/dg.sh", "pacs", "cartoon", 1, 5, *OPTS)
case("metaprompt-dg-official", "metaprompt/dg.sh", "office_home", "art", 2, 1,
     env={"TRAINER": "Meta_DG", "CFG": "vit_b16"})
case("metaprompt-dg-all", "metaprompt/dg_all.sh", "vlcs", 1, *OPTS, env={"SEEDS": "2"})
case("copl-few-shot", "copl/few_shot.sh", "caltech101", 2, *OPTS, env={"SEEDS": "1 3"})
case("maple-reproduce", "maple/reproduce.sh", "caltech101", 1, "$WEIGHTS/b2n", *OPTS)
case("maple-reproduce-xd", "maple/reproduce_xd.sh", "dtd", 2, "$WEIGHTS/xd", *OPTS)
case("vpt-reproduce-loadep", "vpt/reproduce.sh", "eurosat", 1, "$WEIGHTS/b2n", env={"LOADEP": "3", "VARIANT": ""})
case("ivlp-reproduce-xd", "independent-vlp/reproduce_xd.sh", "imagenetv2", 2, "$WEIGHTS/xd")

# bad input: one line on stderr, exit status 2, nothing run
case("no-data", "cocoop/base2new_train.sh", "caltech101", 1, env={"DATA": ""})
case("data-not-a-folder", "cocoop/base2new_train.sh", "caltech101", 1, env={"DATA": "$DATA/nowhere"})
case("unknown-dataset", "cocoop/base2new_train.sh", "caltech_101", 1)
case("unknown-config", "maple/base2new_train.sh", "dtd", 1, env={"CFG": "nope"})
case("odd-options", "maple/base2new_train.sh", "dtd", 1, "OPTIM.LR")
case("bad-variant", "maple/base2new_train.sh", "dtd", 1, env={"VARIANT": "a/b"})
case("usage", "maple/base2new_train.sh", "dtd")
case("usage-xd", "cocoop/xd_train.sh")
case("usage-coop", "coop/main.sh", "dtd", "rn50")
case("untrained", "cocoop/base2new_test.sh", "dtd", 1)
case("only-variants-trained", "maple/base2new_test.sh", "caltech101", 1)
case("unfinished-training", "maple/base2new_test.sh", "caltech101", 1, "OPTIM.LR", "0.5")
case("not-a-domain", "metaprompt/dg.sh", "pacs", "nowhere", 1, 5)
case("unknown-dg-dataset", "metaprompt/dg_all.sh", "pets", 1)
case("reproduce-no-seed", "maple/reproduce.sh", "dtd", 3, "$WEIGHTS/b2n")
case("reproduce-no-folder", "maple/reproduce.sh", "dtd", 1, "$WEIGHTS/nowhere")
case("reproduce-no-checkpoint", "maple/reproduce_xd.sh", "dtd", 1, "$WEIGHTS/xd")

# KgCoOp and ProGrad (added with them; recorded from their first implementation as thin callers)
for m in ("kgcoop", "prograd"):
    case(f"{m}-b2n-train", f"{m}/base2new_train.sh", "caltech101", 1, *OPTS)
    case(f"{m}-b2n-test", f"{m}/base2new_test.sh", "caltech101", 1, *OPTS, prepare=[f"{m}-b2n-train"])
    case(f"{m}-xd-train", f"{m}/xd_train.sh", 2)
    case(f"{m}-xd-test", f"{m}/xd_test.sh", "imagenet_sketch", 2, prepare=[f"{m}-xd-train"])
case("kgcoop-b2n-train-w", "kgcoop/base2new_train.sh", "dtd", 3, "TRAINER.COOP.W", "2.0")
case("kgcoop-few-shot", "kgcoop/few_shot.sh", "oxford_pets", 4, env={"SEEDS": "1 2"})
case("prograd-main", "prograd/main.sh", "caltech101", "rn50_ep50", "end", 16, 1, "False", env={"SEEDS": "1 2"})
case("prograd-main-lambda", "prograd/main.sh", "dtd", "rn50", "end", 16, 8, "False", "LOSS.LAMBDA", "0.8",
     env={"SEEDS": "3"})
case("prograd-b2n-official", "prograd/base2new_train.sh", "eurosat", 1, env={"CFG": "rn50_ep100", "SHOTS": "4"})

# PromptSRC and DePT (issue 22): scripts written as callers of vlprompt.protocols from the start, so their
# expected command lines were recorded from them, after checking each against the official scripts (PromptSRC's
# scripts/promptsrc/*.sh) and DePT's runner (templates.py: its output tree, SUBSAMPLE_CLASSES all for xd).
for m in ["promptsrc", "coop_dept", "cocoop_dept", "kgcoop_dept", "maple_dept"]:
    case(f"{m}-b2n-train", f"{m}/base2new_train.sh", "caltech101", 1, *OPTS)
    case(f"{m}-b2n-test", f"{m}/base2new_test.sh", "caltech101", 1, *OPTS, prepare=[f"{m}-b2n-train"])
    case(f"{m}-xd-train", f"{m}/xd_train.sh", "imagenet", 1, *OPTS)
    case(f"{m}-xd-test", f"{m}/xd_test.sh", "imagenet_r", 1, *OPTS, prepare=[f"{m}-xd-train"])
case("promptsrc-few-shot", "promptsrc/few_shot.sh", "eurosat", 8, *OPTS, env={"SEEDS": "2"})
case("promptsrc-few-shot-caltech", "promptsrc/few_shot.sh", "caltech101", 1, env={"SEEDS": "1 3"})
case("promptsrc-reproduce", "promptsrc/reproduce_base2novel_setting.sh", "caltech101", 1, "$WEIGHTS/b2n")
case("promptsrc-reproduce-xd", "promptsrc/reproduce_xd.sh", "dtd", 2, "$WEIGHTS/xd")
case("promptsrc-reproduce-few-shot", "promptsrc/reproduce_few_shot.sh", "dtd", 4, "$WEIGHTS/fs", env={"SEEDS": "1 2"})
case("promptsrc-reproduce-few-shot-missing", "promptsrc/reproduce_few_shot.sh", "dtd", 4, "$WEIGHTS/fs")
case("coop_dept-b2n-test-untrained", "coop_dept/base2new_test.sh", "dtd", 1)


def make_weights(root):
    """Released-weights trees: b2n/base/seed1 (a pointer to epoch 5) and xd/seed2 (no pointer: the highest
    model.pth.tar-N, 2), and xd/seed1 without a checkpoint; PromptSRC's few-shot release fs/4shot/seed1, seed2."""
    for folder, files in (("b2n/base/seed1/MultiModalPromptLearner", {"model.pth.tar-5": "", "model.pth.tar-3": "",
                                                                        "checkpoint": "model.pth.tar-5\n"}),
                          ("xd/seed2/MultiModalPromptLearner", {"model.pth.tar-1": "", "model.pth.tar-2": ""}),
                          ("xd/seed1/MultiModalPromptLearner", {}),
                          ("fs/4shot/seed1/VLPromptLearner", {"model.pth.tar-50": "", "checkpoint": "model.pth.tar-50\n"}),
                          ("fs/4shot/seed2/VLPromptLearner", {"model.pth.tar-50": ""})):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(root, folder, name), "w") as f:
                f.write(text)


def make_unfinished(output):
    """A started but unfinished training run (for the case unfinished-training)."""
    os.makedirs(os.path.join(output, "base2new/train_base/caltech101/shots_16/MaPLe/"
                                     "vit_b16_c2_ep5_batch4_2ctx+OPTIM.LR=0.5/seed1"), exist_ok=True)


def finish(output_dir, epoch=7):
    """Make a training run's directory look finished, as the test scripts see it."""
    os.makedirs(os.path.join(output_dir, "prompt_learner"), exist_ok=True)
    with open(os.path.join(output_dir, "prompt_learner", "checkpoint"), "w") as f:
        f.write(f"model.pth.tar-{epoch}\n")
    with open(os.path.join(output_dir, "result.json"), "w") as f:
        f.write("{}")


def substitute(text, paths):
    for key, value in paths.items():
        text = text.replace(f"${key}", value)
    return text


def normalise(text, paths):
    for key, value in sorted(paths.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(value, f"${key}")
    return text
