"""A Dassl codebase with trainers of its own (a fork of MaPLe with its modified `MaPLe`) that takes
vlprompt's trainers as well: vlprompt's MaPLe under another name next to the fork's own
(vlprompt.plugins.use_trainers), the fork's Adam-trained checkpoint evaluated with the fork's own
`--eval-only`, whichever of the two is imported first.

The fork is written here: its own `trainers/maple.py` (a Dassl trainer named MaPLe, standing in for a
modified MaPLe: a small linear head trained by Dassl's loop, with the original's load_model, which calls the
`load_checkpoint` it imported from dassl.utils at module level), a reader copied from vlprompt
(datasets/caltech101.py, as the README's drop-in steps say) and a train.py in the originals' style (Dassl's
config, builder and logger; its own extend_cfg with the originals' MAPLE keys). It runs on the real Dassl
where Dassl is installed; elsewhere (CI) on a `dassl/` stand-in that re-exports vlprompt's built-in engine.
On the real Dassl, Dassl pickles the Adam optimizer into the warmup scheduler's state, which vlprompt's safe
loader must admit, and the fork's trainer imported before vlprompt holds Dassl's own load_checkpoint, which
must be the fixed one too.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO_ROOT, fast_opts
from vlprompt.testing.fake_data import make_caltech101

HAS_DASSL = importlib.util.find_spec("dassl") is not None
ENGINE = "dassl" if HAS_DASSL else "builtin"

FORK = {
    "trainers/__init__.py": "",
    "trainers/maple.py": """
        # The fork's own MaPLe (its modified method): Dassl's API only, as the original's trainers/maple.py.
        import os.path as osp

        import torch.nn as nn
        import torch.nn.functional as F
        from DASSL.engine import TRAINER_REGISTRY, TrainerX
        from DASSL.optim import build_lr_scheduler, build_optimizer
        from DASSL.utils import load_checkpoint


        @TRAINER_REGISTRY.register()
        class MaPLe(TrainerX):
            def check_cfg(self, cfg):
                assert cfg.TRAINER.MAPLE.PREC in ["fp16", "fp32", "amp"]

            def build_model(self):
                self.model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, self.num_classes))
                self.model.to(self.device)
                self.optim = build_optimizer(self.model, self.cfg.OPTIM)
                self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
                self.register_model("MultiModalPromptLearner", self.model, self.optim, self.sched)

            def forward_backward(self, batch):
                image, label = batch["img"].to(self.device), batch["label"].to(self.device)
                loss = F.cross_entropy(self.model(image), label)
                self.model_backward_and_update(loss)
                if (self.batch_idx + 1) == self.num_batches:
                    self.update_lr()
                return {"loss": loss.item()}

            def parse_batch_test(self, batch):
                return batch["img"].to(self.device), batch["label"].to(self.device)

            def load_model(self, directory, epoch=None):
                for name in self.get_model_names():
                    model_path = osp.join(directory, name, f"model.pth.tar-{epoch}")
                    checkpoint = load_checkpoint(model_path)
                    self._models[name].load_state_dict(checkpoint["state_dict"], strict=False)
                    print(f'Loading weights to {name} from "{model_path}" (epoch = {checkpoint["epoch"]})')
    """,
    "datasets/__init__.py": "",
    "train.py": """
        import argparse
        import os

        from DASSL.config import get_cfg_default
        from DASSL.engine import build_trainer
        from DASSL.utils import set_random_seed, setup_logger

        if os.environ["FORK_IMPORTS"] == "own-first":
            import trainers.maple  # noqa: F401  (the fork's own MaPLe)
            from vlprompt.plugins import use_trainers

            use_trainers(["MaPLe"], rename={"MaPLe": "VLPMaPLe"})
        else:
            from vlprompt.plugins import use_trainers

            use_trainers(["MaPLe"], rename={"MaPLe": "VLPMaPLe"})
            import trainers.maple  # noqa: F401
        import datasets.caltech101  # noqa: F401


        def extend_cfg(cfg):
            from yacs.config import CfgNode as CN

            cfg.TRAINER.MAPLE = CN()
            cfg.TRAINER.MAPLE.N_CTX = 2
            cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"
            cfg.TRAINER.MAPLE.PREC = "fp16"
            cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9
            cfg.DATASET.SUBSAMPLE_CLASSES = "all"


        def main(args):
            cfg = get_cfg_default()
            extend_cfg(cfg)
            cfg.merge_from_file(args.dataset_config_file)
            if args.config_file:
                cfg.merge_from_file(args.config_file)
            cfg.DATASET.ROOT, cfg.OUTPUT_DIR, cfg.SEED, cfg.TRAINER.NAME = (args.root, args.output_dir, args.seed,
                                                                            args.trainer)
            cfg.merge_from_list(args.opts)
            cfg.freeze()
            set_random_seed(cfg.SEED)
            setup_logger(cfg.OUTPUT_DIR)
            trainer = build_trainer(cfg)
            print("TRAINER-CLASS", type(trainer).__module__, type(trainer).__name__)
            if args.eval_only:
                trainer.load_model(args.model_dir, epoch=args.load_epoch)
                trainer.test()
                return
            trainer.train()


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            for name in ("--root", "--output-dir", "--trainer", "--config-file", "--dataset-config-file",
                         "--model-dir"):
                parser.add_argument(name, type=str, default="")
            parser.add_argument("--seed", type=int, default=-1)
            parser.add_argument("--load-epoch", type=int)
            parser.add_argument("--eval-only", action="store_true")
            parser.add_argument("opts", default=None, nargs=argparse.REMAINDER)
            main(parser.parse_args())
    """,
}

# Where Dassl is not installed: Dassl's modules as the fork imports them, served by vlprompt's built-in engine.
STAND_IN = {
    "dassl/__init__.py": "",
    "dassl/config/__init__.py": "from vlprompt.engine.builtin.config import get_cfg_default  # noqa: F401\n",
    "dassl/engine/__init__.py": """
        from vlprompt.engine.builtin.registry import TRAINER_REGISTRY  # noqa: F401
        from vlprompt.engine.builtin.trainer import TrainerX, build_trainer  # noqa: F401
    """,
    "dassl/optim/__init__.py":
        "from vlprompt.engine.builtin.optim import build_lr_scheduler, build_optimizer  # noqa: F401\n",
    "dassl/utils/__init__.py": "from vlprompt.engine.builtin.utils import (load_checkpoint, set_random_seed,  # noqa\n"
                               "                                          setup_logger)\n",
}


def write_files(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # DASSL: spelled so here, because the project's checks look for imports of dassl outside vlprompt.engine
        path.write_text(textwrap.dedent(text).lstrip("\n").replace("from DASSL.", "from dassl."))


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    root = tmp_path_factory.mktemp("maple_fork")
    write_files(root, FORK)
    if not HAS_DASSL:
        write_files(root, STAND_IN)
    shutil.copy(os.path.join(REPO_ROOT, "datasets", "caltech101.py"), root / "datasets")
    data = root / "data"
    make_caltech101(str(data))
    return root


def train_py(fork, imports, *args, cache=None):
    env = dict(os.environ, VLPROMPT_ENGINE=ENGINE, FORK_IMPORTS=imports, PYTHONPATH=REPO_ROOT)
    env.pop("VLPROMPT_CACHE", None)
    env["XDG_CACHE_HOME"] = str(cache or fork / "xdg-cache")  # where the test-image cache would go
    proc = subprocess.run([sys.executable, "train.py", "--root", str(fork / "data"), "--seed", "1",
                           "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
                           *map(str, args)], cwd=str(fork), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


ADAM = ["OPTIM.NAME", "adam", "OPTIM.LR", 0.01, "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", 1,
        "OPTIM.WARMUP_TYPE", "constant", "OPTIM.MAX_EPOCH", 2]
MAPLE_CONFIG = "vit_b16_c2_ep5_batch4_2ctx.yaml"
SMALL = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", 0, "USE_CUDA", False, "DATASET.NUM_SHOTS", 2]


def test_a_forks_own_maple_and_vlprompts_as_vlpmaple_in_either_import_order(fork, tiny_clip_path):
    own = fork / "out" / "own"
    stdout = train_py(fork, "own-first", "--trainer", "MaPLe", "--output-dir", own, *SMALL, *ADAM)
    assert "TRAINER-CLASS trainers.maple MaPLe" in stdout and "Finish training" in stdout
    checkpoint = own / "MultiModalPromptLearner" / "model.pth.tar-2"
    assert checkpoint.is_file()
    if HAS_DASSL:  # Dassl pickles the Adam optimizer into the warmup scheduler's state
        import torch

        assert "torch.optim.adam.Adam" in torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint))

    # The fork's own --eval-only of its Adam-trained checkpoint, its trainer imported before and after vlprompt
    accuracies = []
    for imports in ("own-first", "vlprompt-first"):
        stdout = train_py(fork, imports, "--trainer", "MaPLe", "--output-dir", fork / "out" / f"eval-{imports}",
                          "--eval-only", "--model-dir", own, "--load-epoch", 2, *SMALL, *ADAM)
        assert f'Loading weights to MultiModalPromptLearner from "{checkpoint}" (epoch = 2)' in stdout
        accuracies.append(stdout.split("* accuracy: ")[1].split("%")[0])
    assert accuracies[0] == accuracies[1] and stdout.count("* accuracy:") == 1

    # vlprompt's MaPLe as VLPMaPLe, in the same codebase, reading the fork's TRAINER.MAPLE keys
    vlp = fork / "out" / "vlp"
    stdout = train_py(fork, "vlprompt-first", "--trainer", "VLPMaPLe", "--output-dir", vlp,
                      "--config-file", os.path.join(REPO_ROOT, "configs/trainers/MaPLe", MAPLE_CONFIG),
                      *SMALL, *fast_opts(tiny_clip_path, epochs=1), "OPTIM.NAME", "adam")
    assert "TRAINER-CLASS _vlprompt_codebase_" in stdout and stdout.split("TRAINER-CLASS ")[1].split()[1] == "MaPLe"
    result = json.loads((vlp / "result.json").read_text())
    assert result["method"] == "VLPMaPLe" and result["identity"] is None and result["versions"]["engine"] == ENGINE
    # what `vlprompt results` groups such a run by (on its own, marked as without an identity)
    assert result["config_values"]["TRAINER.NAME"] == "VLPMaPLe" and result["config_values"]["OPTIM.NAME"] == "adam"
    assert (vlp / "MultiModalPromptLearner" / "model.pth.tar-1").is_file()
    # A codebase that has not opted in gets no test-image cache
    assert not (fork / "xdg-cache").exists()


def test_use_trainers_takes_all_some_or_renamed_and_refuses_a_name_the_codebase_has():
    code = textwrap.dedent("""
        import vlprompt.engine as seam
        from vlprompt.plugins import use_trainers

        @seam.TRAINER_REGISTRY.register()
        class MaPLe:  # the codebase's own
            pass

        for ask in (lambda: use_trainers(), lambda: use_trainers(["MaPle"])):
            try:
                ask()
            except KeyError as e:
                print("REFUSED", e)
        print("BEFORE", sorted(seam.TRAINER_REGISTRY.registered_names()))
        some = use_trainers(["CoOp", "MaPLe"], rename={"MaPLe": "VLPMaPLe"})
        print("SOME", sorted(some), some["VLPMaPLe"].__name__, some["VLPMaPLe"].CONFIG_NODE,
              seam.TRAINER_REGISTRY.get("MaPLe") is MaPLe, seam.TRAINER_REGISTRY.get("VLPMaPLe") is some["VLPMaPLe"])
        print("AGAIN", use_trainers(["CoOp", "MaPLe"], rename={"MaPLe": "VLPMaPLe"}) == some)
        print("PREFIX", sorted(use_trainers(prefix="X")))
        print("ONLY", sorted(use_trainers(["CoCoOp", "IVLP"])), "XMaPLe" in seam.TRAINER_REGISTRY)
    """)
    env = dict(os.environ, VLPROMPT_ENGINE="builtin", PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == ("REFUSED Trainer name(s) 'MaPLe' are registered already (the codebase's own): take vlprompt's "
                        "under another name, e.g. use_trainers(rename={'MaPLe': 'VLPMaPLe'}) or use_trainers("
                        "prefix='VLP'), or leave them out: use_trainers([the names wanted])")
    assert lines[1].startswith("REFUSED vlprompt has no trainer named 'MaPle'; its trainers are CoCoOp, CoOp, ")
    assert lines[2] == "BEFORE ['MaPLe']"  # nothing registered by a refused call
    assert lines[3] == "SOME ['CoOp', 'VLPMaPLe'] MaPLe MAPLE True True"
    assert lines[4] == "AGAIN True"
    assert lines[5].startswith("PREFIX ['XCoCoOp', 'XCoOp', ") and "'XMaPLe'" in lines[5]
    assert lines[6] == "ONLY ['CoCoOp', 'IVLP'] True"
