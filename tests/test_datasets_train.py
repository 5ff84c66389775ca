"""train.py end to end (in this process, tiny CLIP) on generated trees: ImageNet few-shot, OxfordPets base
classes, and a test-only ImageNet variant evaluated zero-shot 200-way style (only its own classes)."""
import os
import random

from dataset_fixtures import coop_subsample, dassl_fewshot
from helpers import fast_opts, read_result, run_train
from vlprompt.testing.fake_data import make_dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cfg_file(*parts):
    return os.path.join(REPO_ROOT, "configs", *parts)


def picks(items):
    return [(d.impath, d.label, d.classname) for d in items]


def test_imagenet_fewshot_training(tmp_path, tiny_clip_path):
    spec = make_dataset("ImageNet", tmp_path / "data")
    out = tmp_path / "out"
    trainer = run_train(["--root", spec.root, "--seed", 2, "--trainer", "CoOp",
                         "--dataset-config-file", cfg_file("datasets", "imagenet.yaml"),
                         "--config-file", cfg_file("trainers", "CoOp", "vit_b16_ep50.yaml"), "--output-dir", out,
                         "DATASET.NUM_SHOTS", 2, *fast_opts(tiny_clip_path, epochs=1)])
    dataset = trainer.dm.dataset
    random.seed(2)  # train.py seeds before building the trainer; nothing else draws before the sampling
    assert picks(dataset.train_x) == dassl_fewshot(spec.expected["train"], 2)
    assert dataset.val is dataset.test and picks(dataset.test) == spec.expected["test"]
    result = read_result(out)
    assert result["dataset"] == "ImageNet" and result["num_classes"] == 6
    assert result["num_test_images"] == len(spec.expected["test"])
    assert os.path.isfile(os.path.join(spec.dataset_dir, "preprocessed.pkl"))
    assert os.path.isfile(os.path.join(spec.dataset_dir, "split_fewshot", "shot_2-seed_2.pkl"))


def test_oxford_pets_base_classes(tmp_path, tiny_clip_path):
    spec = make_dataset("OxfordPets", tmp_path / "data")
    out = tmp_path / "out"
    trainer = run_train(["--root", spec.root, "--seed", 1, "--trainer", "CoOp",
                         "--dataset-config-file", cfg_file("datasets", "oxford_pets.yaml"),
                         "--config-file", cfg_file("trainers", "CoOp", "vit_b16_ep50.yaml"), "--output-dir", out,
                         "DATASET.NUM_SHOTS", 4, "DATASET.SUBSAMPLE_CLASSES", "base",
                         *fast_opts(tiny_clip_path, epochs=1)])
    dataset = trainer.dm.dataset
    random.seed(1)
    train = dassl_fewshot(spec.expected["train"], 4)
    assert picks(dataset.train_x) == coop_subsample([train], "base")[0]
    assert dataset.classnames == ["abyssinian", "american_bulldog", "american_pit_bull_terrier"]
    assert trainer.dm.num_classes == 3
    result = read_result(out)
    assert result["subsample"] == "base" and result["num_classes"] == 3
    assert result["num_test_images"] == 3 * 3  # 3 test images for each of the 3 base breeds


def test_test_only_variant_zero_shot_eval(tmp_path, tiny_clip_path, tiny_clip):
    spec = make_dataset("ImageNetA", tmp_path / "data")
    out = tmp_path / "out"
    trainer = run_train(["--root", spec.root, "--trainer", "ZeroshotCLIP", "--eval-only",
                         "--dataset-config-file", cfg_file("datasets", "imagenet_a.yaml"),
                         "--config-file", cfg_file("trainers", "CoOp", "vit_b16.yaml"), "--output-dir", out,
                         "DATASET.NUM_SHOTS", 16, "DATASET.SUBSAMPLE_CLASSES", "new", *fast_opts(tiny_clip_path)])
    assert trainer.dm.dataset.classnames == spec.classnames  # the variant's own classes, shots ignored
    result = read_result(out)
    assert result["mode"] == "eval-only" and result["num_classes"] == 4
    assert result["num_test_images"] == len(spec.expected["test"])
    # The accuracy is zero-shot CLIP's, computed here on CLIP's own encoders: "a photo of a {}." (CoOp's
    # ImageNet-A template) against the test images with the test-time transform.
    import torch
    import torch.nn.functional as F
    from vlprompt.clip_loader import tokenize
    from vlprompt.engine import build_data_loader, build_transform

    loader = build_data_loader(trainer.cfg, "SequentialSampler", data_source=trainer.dm.dataset.test, batch_size=100,
                               tfm=build_transform(trainer.cfg, is_train=False), is_train=False)
    with torch.no_grad():
        text = F.normalize(tiny_clip.encode_text(tokenize([f"a photo of a {c}." for c in spec.classnames])), dim=-1)
        correct = total = 0
        for batch in loader:
            image = F.normalize(tiny_clip.encode_image(batch["img"]), dim=-1)
            correct += int(((image @ text.t()).argmax(dim=-1) == batch["label"]).sum())
            total += len(batch["label"])
    assert total == len(spec.expected["test"])
    assert result["metrics"]["accuracy"] == 100.0 * correct / total


def test_custom_dataset_worked_example(tmp_path, tiny_clip_path):
    """docs/DATASETS.md's worked example: image folders under $DATA/my_parts, a dataset YAML, 2 shots, base."""
    spec = make_dataset("CustomDataset", tmp_path / "data", folder="my_parts")
    yaml = tmp_path / "my_parts.yaml"
    yaml.write_text('DATASET:\n  NAME: "CustomDataset"\n  CUSTOM:\n    DIR: "my_parts"\n')
    out = tmp_path / "out"
    trainer = run_train(["--root", spec.root, "--seed", 1, "--trainer", "CoOp", "--dataset-config-file", yaml,
                         "--config-file", cfg_file("trainers", "CoOp", "vit_b16_ep50.yaml"), "--output-dir", out,
                         "DATASET.NUM_SHOTS", 2, "DATASET.SUBSAMPLE_CLASSES", "base",
                         *fast_opts(tiny_clip_path, epochs=1)])
    assert trainer.dm.dataset.classnames == ["bolt", "nut", "screw"]
    random.seed(1)
    assert picks(trainer.dm.dataset.train_x) == coop_subsample([dassl_fewshot(spec.expected["train"], 2)], "base")[0]
    result = read_result(out)
    assert result["dataset"] == "CustomDataset" and result["num_test_images"] == 3 * 3
