"""vlprompt's trainer and dataset modules dropped into a codebase laid out like the MaPLe repository.

The codebase is built here (written for this test, in the original's layout): its own `clip/` package,
whose `build_model(state_dict, design_details)` needs `design_details` and shadows OpenAI's `clip`
when the codebase's root is on sys.path; `trainers/` and `datasets/` into which vlprompt's modules are
copied, replacing the originals' files of the same names, next to files of the codebase that stay
(`trainers/imagenet_templates.py`, and a reader of its own that calls the originals' static helpers
`OxfordPets.read_split / save_split / subsample_classes` and `DTD.read_and_split_data`); and a
`train.py` in the original's style: Dassl's API, its own extend_cfg with the originals' keys. A small
`dassl` package stands in for Dassl with vlprompt's built-in engine (CI has no Dassl).
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO_ROOT, fast_opts
from vlprompt.testing.fake_data import make_caltech101

FILES = {
    # The codebase's modified CLIP: importable, but its build_model is not OpenAI's.
    "clip/__init__.py": "from .clip import *  # noqa: F401,F403\n",
    "clip/clip.py": """
        from .model import build_model

        __all__ = ["load", "build_model"]


        def load(name, device="cpu"):
            raise RuntimeError("the codebase's own clip.load: vlprompt must not call it")
    """,
    "clip/model.py": """
        def build_model(state_dict: dict, design_details):
            raise RuntimeError("the codebase's modified build_model (design_details "
                               f"{design_details!r}): vlprompt must not call it")
    """,
    # Dassl's modules as the original train.py and readers import them, served by vlprompt's built-in engine.
    "dassl/__init__.py": "",
    "dassl/config/__init__.py": "from vlprompt.engine.builtin.config import get_cfg_default  # noqa: F401\n",
    "dassl/engine/__init__.py": """
        from vlprompt.engine.builtin.registry import TRAINER_REGISTRY  # noqa: F401
        from vlprompt.engine.builtin.trainer import TrainerX, build_trainer  # noqa: F401
    """,
    "dassl/data/__init__.py": "",
    "dassl/data/datasets/__init__.py":
        "from vlprompt.engine.builtin.datasets import DATASET_REGISTRY, DatasetBase, Datum  # noqa: F401\n",
    "dassl/utils/__init__.py": "from vlprompt.engine.builtin.utils import (collect_env_info, mkdir_if_missing,  # noqa: F401\n"
                               "                                          set_random_seed, setup_logger)\n",
    "trainers/__init__.py": "",
    "trainers/imagenet_templates.py": 'IMAGENET_TEMPLATES = ["a photo of a {}."]\n',
    "datasets/__init__.py": "",
    # A reader of the codebase's own, written against the originals' static helpers.
    "datasets/caltech_own_split.py": """
        import os

        from DASSL.data.datasets import DATASET_REGISTRY, DatasetBase
        from DASSL.utils import mkdir_if_missing

        from .dtd import DescribableTextures as DTD
        from .oxford_pets import OxfordPets

        IGNORED = ["BACKGROUND_Google", "Faces_easy"]


        @DATASET_REGISTRY.register()
        class CaltechOwnSplit(DatasetBase):
            dataset_dir = "caltech-101"

            def __init__(self, cfg):
                root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
                self.dataset_dir = os.path.join(root, self.dataset_dir)
                self.image_dir = os.path.join(self.dataset_dir, "101_ObjectCategories")
                self.split_path = os.path.join(self.dataset_dir, "split_own.json")
                mkdir_if_missing(os.path.join(self.dataset_dir, "split_fewshot"))
                if os.path.exists(self.split_path):
                    train, val, test = OxfordPets.read_split(self.split_path, self.image_dir)
                else:
                    train, val, test = DTD.read_and_split_data(self.image_dir, ignored=IGNORED)
                    OxfordPets.save_split(train, val, test, self.split_path, self.image_dir)
                shots = cfg.DATASET.NUM_SHOTS
                if shots >= 1:
                    train = self.generate_fewshot_dataset(train, num_shots=shots)
                    val = self.generate_fewshot_dataset(val, num_shots=min(shots, 4))
                train, val, test = OxfordPets.subsample_classes(train, val, test,
                                                                subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
                super().__init__(train_x=train, val=val, test=test)
    """,
    "train.py": """
        import argparse

        import clip  # noqa: F401  (the codebase's own, as its original trainers import it)
        from DASSL.config import get_cfg_default
        from DASSL.engine import build_trainer
        from DASSL.utils import collect_env_info, set_random_seed, setup_logger

        import datasets.caltech101  # noqa: F401
        import datasets.caltech_own_split  # noqa: F401
        import datasets.dtd  # noqa: F401
        import datasets.oxford_pets  # noqa: F401
        import trainers.coop  # noqa: F401
        import trainers.cocoop  # noqa: F401
        import trainers.independentVL  # noqa: F401
        import trainers.maple  # noqa: F401
        import trainers.vpt  # noqa: F401
        import trainers.zsclip  # noqa: F401


        def extend_cfg(cfg):
            from yacs.config import CfgNode as CN  # as the original: plain yacs nodes in the engine's tree

            cfg.TRAINER.COOP = CN()
            cfg.TRAINER.COOP.N_CTX = 16
            cfg.TRAINER.COOP.CSC = False
            cfg.TRAINER.COOP.CTX_INIT = ""
            cfg.TRAINER.COOP.PREC = "fp16"
            cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"
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
            cfg.merge_from_file(args.config_file)
            cfg.DATASET.ROOT, cfg.OUTPUT_DIR, cfg.SEED, cfg.TRAINER.NAME = (args.root, args.output_dir, args.seed,
                                                                            args.trainer)
            cfg.merge_from_list(args.opts)
            cfg.freeze()
            set_random_seed(cfg.SEED)
            setup_logger(cfg.OUTPUT_DIR)
            print(collect_env_info())
            trainer = build_trainer(cfg)
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


def make_codebase(root):
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # DASSL: the stand-in package's name, spelled so in the texts above (the project's checks look for
        # imports of the real Dassl outside vlprompt.engine)
        path.write_text(textwrap.dedent(text).lstrip("\n").replace("from DASSL.", "from dassl."))
    # The drop-in: vlprompt's modules replace the originals' files of the same names.
    for folder in ("trainers", "datasets"):
        for source in glob.glob(os.path.join(REPO_ROOT, folder, "*.py")):
            if os.path.basename(source) != "__init__.py":
                shutil.copy(source, root / folder)
    return root


@pytest.fixture(scope="module")
def codebase(tmp_path_factory):
    return make_codebase(tmp_path_factory.mktemp("maple_repo"))


def train_py(codebase, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the codebase and installed vlprompt
    env["VLPROMPT_ENGINE"] = "builtin"  # the dassl/ stand-in is not Dassl
    proc = subprocess.run([sys.executable, "train.py", *map(str, args)], cwd=str(codebase), env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_codebases_clip_shadows_openais_and_vlprompt_still_loads_openais(codebase):
    code = ("import clip, vlprompt.clip_loader as l; print(clip.__file__); print(l.clip.__name__); "
            "import inspect; print(list(inspect.signature(clip.model.build_model).parameters))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(codebase), capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    shadow, loaded, params = proc.stdout.strip().splitlines()
    assert shadow == str(codebase / "clip" / "__init__.py") and params == "['state_dict', 'design_details']"
    assert loaded == "vlprompt._openai_clip"  # OpenAI's, loaded from clip-anytorch under a private name


def test_maple_trains_and_evaluates_from_the_codebases_train_py(codebase, caltech_root, tiny_clip_path, tmp_path):
    out = tmp_path / "maple"
    common = ["--root", caltech_root, "--seed", 1, "--trainer", "MaPLe",
              "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
              "--config-file", os.path.join(REPO_ROOT, "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml")]
    opts = fast_opts(tiny_clip_path, epochs=1) + ["DATASET.NUM_SHOTS", 2]
    log = train_py(codebase, *common, "--output-dir", out, *opts, "DATASET.SUBSAMPLE_CLASSES", "base")
    assert "MaPLe design: Multi-modal Prompt Learning" in log and "Finish training" in log
    assert (out / "MultiModalPromptLearner" / "model.pth.tar-1").is_file()
    trained = json.loads((out / "result.json").read_text())
    assert trained["method"] == "MaPLe" and trained["num_classes"] == 5
    test_out = tmp_path / "maple_new"
    log = train_py(codebase, *common, "--output-dir", test_out, "--model-dir", out, "--load-epoch", 1, "--eval-only",
                   *opts, "DATASET.SUBSAMPLE_CLASSES", "new")
    assert 'Loading weights to MultiModalPromptLearner from "' in log and "* accuracy:" in log
    result = json.loads((test_out / "result.json").read_text())
    assert result["mode"] == "eval-only" and result["subsample"] == "new" and result["checkpoint"]["epoch"] == 1


def test_coop_trains_on_the_codebases_own_reader_built_on_the_static_helpers(codebase, tiny_clip_path, tmp_path):
    data = tmp_path / "data"
    make_caltech101(str(data), with_split=False)
    out = tmp_path / "coop"
    opts = fast_opts(tiny_clip_path, epochs=1) + ["DATASET.NAME", "CaltechOwnSplit", "DATASET.NUM_SHOTS", 2,
                                                  "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.COOP.N_CTX", 4]
    log = train_py(codebase, "--root", data, "--seed", 1, "--trainer", "CoOp", "--output-dir", out,
                   "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
                   "--config-file", os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml"), *opts)
    assert "SUBSAMPLE BASE CLASSES!" in log and "Finish training" in log
    split = json.loads((data / "caltech-101" / "split_own.json").read_text())
    assert len({label for _, label, _ in split["train"]}) == 10  # DTD.read_and_split_data, 2 folders ignored
    result = json.loads((out / "result.json").read_text())
    assert result["dataset"] == "CaltechOwnSplit" and result["num_classes"] == 5  # ceil(10 / 2) base classes
