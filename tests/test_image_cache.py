"""The test-image cache (vlprompt.data.image_cache): batches and logits from the cache equal the JPEG
path's bit for bit; a stale, foreign, truncated or corrupt cache is rebuilt, never used; builds are
atomic; evaluation falls back to the files (with a note) when the cache cannot be used."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vlprompt.config import build_config
from vlprompt.data import image_cache
from vlprompt.engine import Datum, build_data_loader, build_transform
from vlprompt.engine import loaders as data_manager
from vlprompt.testing.fake_data import write_jpeg

from helpers import REPO_ROOT, fast_opts, run_train

COOP_CONFIG = os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml")  # bicubic, CLIP's normalisation


def make_images(folder, n=10, prefix="img"):
    """JPEGs of different sizes and aspect ratios (one grayscale, one PNG): resize and crop both matter."""
    paths = []
    for i in range(n):
        size = [(40, 30), (30, 45), (64, 64), (50, 33)][i % 4]
        path = write_jpeg(os.path.join(folder, f"{prefix}_{i:03d}.jpg"), ((i * 53) % 256, (i * 97) % 256, 128),
                          size=size, noise=60, seed=i)
        paths.append(path)
    Image.open(paths[1]).convert("L").save(paths[1], format="JPEG", quality=85)
    png = os.path.join(folder, f"{prefix}_png.png")
    Image.open(paths[2]).save(png)
    paths.append(png)
    return paths


def make_loader(paths, size=32, interpolation="bicubic", transforms=None, batch_size=4, workers=0):
    opts = ["INPUT.SIZE", f"({size}, {size})", "INPUT.INTERPOLATION", interpolation,
            "DATALOADER.NUM_WORKERS", workers]
    if transforms is not None:
        opts += ["INPUT.TRANSFORMS", transforms]
    cfg = build_config(config_file=COOP_CONFIG, opts=opts)
    data = [Datum(p, label=i % 3, domain=i % 2, classname=f"c{i % 3}") for i, p in enumerate(paths)]
    return build_data_loader(cfg, "SequentialSampler", data, batch_size=batch_size,
                             tfm=build_transform(cfg, is_train=False), is_train=False)


def prepare(loader, directory, name="set_test", **kw):
    cache, reason = image_cache.prepare_cache(loader, str(directory), name, **kw)
    assert cache is not None, reason
    return cache


def assert_same_batches(cached_batches, jpeg_loader):
    cached, reference = list(cached_batches), list(jpeg_loader)
    assert len(cached) == len(reference)
    for got, want in zip(cached, reference):
        assert list(got) == list(want)  # same keys, same order
        assert got["impath"] == want["impath"]
        for key in ("label", "domain", "index", "img"):
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key


def cache_files(directory):
    return sorted(f for f in os.listdir(directory) if not f.startswith("."))


@pytest.fixture
def images(tmp_path):
    return make_images(str(tmp_path / "images"))


# ------------------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("size,interpolation", [(32, "bicubic"), (224, "bilinear")])
def test_cached_batches_equal_the_jpeg_loader_bit_for_bit(tmp_path, images, size, interpolation):
    loader = make_loader(images, size=size, interpolation=interpolation)
    cache = prepare(loader, tmp_path / "cache")
    assert cache.status == "built" and cache.images.shape == (len(images), 3, size, size)
    assert_same_batches(cache.batches(4), loader)
    assert os.path.getsize(cache.path) == image_cache.HEADER_BYTES + len(images) * 3 * size * size


def test_a_valid_cache_is_reused_without_decoding_any_image(tmp_path, images, monkeypatch):
    loader = make_loader(images)
    built = prepare(loader, tmp_path / "cache")
    expected = list(loader)

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(Image, "open", no_decoding)
    reused = prepare(loader, tmp_path / "cache")
    assert reused.status == "reused" and reused.path == built.path
    assert_same_batches(reused.batches(4), expected)
    assert cache_files(tmp_path / "cache") == ["set_test.images"]


def train_argv(trainer, config, data, out, clip_path, *opts, flags=()):
    return ["--root", data, "--seed", 1, "--trainer", trainer,
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
            "--config-file", os.path.join(REPO_ROOT, "configs/trainers", config),
            "--output-dir", out, *flags, *fast_opts(clip_path, epochs=1), "DATALOADER.TEST.BATCH_SIZE", 7, *opts]


def evaluation_outputs(monkeypatch, argv):
    """Every logit and label the evaluator received during an eval-only run of train.py (through the wrapper
    vlprompt puts around either engine's evaluator)."""
    from vlprompt.trainer import ResultKeepingEvaluator

    seen = []
    original = ResultKeepingEvaluator.process

    def record(self, mo, gt):
        seen.append((mo.detach().clone(), gt.detach().clone()))
        return original(self, mo, gt)

    monkeypatch.setattr(ResultKeepingEvaluator, "process", record)
    trainer = run_train(argv)
    monkeypatch.setattr(ResultKeepingEvaluator, "process", original)
    return trainer, torch.cat([s[0] for s in seen]), torch.cat([s[1] for s in seen])


@pytest.mark.parametrize("trainer,config,opts", [
    ("CoOp", "CoOp/vit_b16_ep50.yaml", ["TRAINER.COOP.N_CTX", 4]),
    ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", []),
    ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", []),
])
def test_evaluation_logits_from_the_cache_equal_the_jpeg_path(tmp_path, caltech_root, tiny_clip_path, monkeypatch,
                                                               trainer, config, opts):
    cache_dir = tmp_path / "cache"

    def argv(run, on, flags=()):
        return train_argv(trainer, config, caltech_root, tmp_path / run, tiny_clip_path, *opts, "TEST.IMAGE_CACHE", on,
                          "TEST.IMAGE_CACHE_DIR", cache_dir, flags=flags)

    # Train one epoch; its final evaluation reads the JPEG files. Then evaluate its checkpoint from the cache.
    plain, jpeg_logits, jpeg_labels = evaluation_outputs(monkeypatch, argv("jpeg", False))
    assert isinstance(plain.test_loader, torch.utils.data.DataLoader) and not cache_dir.exists()
    eval_only = ["--eval-only", "--model-dir", tmp_path / "jpeg", "--load-epoch", 1]
    cold, cold_logits, cold_labels = evaluation_outputs(monkeypatch, argv("cold", True, eval_only))
    assert cold.test_loader.cache.status == "built"
    assert cache_files(cache_dir) == [os.path.basename(cold.test_loader.cache.path)]

    original_open = Image.open

    def open_no_dataset_image(path, *args, **kwargs):  # the warm evaluation decodes no image
        assert "caltech" not in str(path), path
        return original_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", open_no_dataset_image)
    warm, warm_logits, warm_labels = evaluation_outputs(monkeypatch, argv("warm", True, eval_only))
    assert warm.test_loader.cache.status == "reused"

    assert jpeg_logits.shape == (len(plain.dm.dataset.test), 10) and jpeg_logits.dtype == torch.float32
    for logits, labels in ((cold_logits, cold_labels), (warm_logits, warm_labels)):
        assert torch.equal(logits, jpeg_logits)
        assert torch.equal(labels, jpeg_labels)


def test_turned_off_with_test_image_cache_false(tmp_path, caltech_root, tiny_clip_path):
    trainer = run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "run", tiny_clip_path,
                                   "TEST.IMAGE_CACHE", False, "TEST.IMAGE_CACHE_DIR", tmp_path / "cache"))
    assert type(trainer.test_loader) is torch.utils.data.DataLoader
    assert not (tmp_path / "cache").exists()


def test_an_unknown_decoder_is_refused(tmp_path, caltech_root, tiny_clip_path):
    with pytest.raises(ValueError, match=r"TEST.IMAGE_CACHE_DECODER 'gpu' is not allowed: expected one of pil, torchvision"):
        run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "run", tiny_clip_path,
                             "TEST.IMAGE_CACHE_DECODER", "gpu"))


# ------------------------------------------------------------------------------------ stale = rebuilt
def change_image(paths, tmp_path):
    write_jpeg(paths[3], (10, 200, 30), size=(40, 30), noise=5, seed=99)
    st = os.stat(paths[3])
    os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    return paths


def add_image(paths, tmp_path):
    return paths + [write_jpeg(os.path.join(os.path.dirname(paths[0]), "new.jpg"), (1, 2, 3), size=(33, 44))]


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)


def corrupt_first_image(path):
    with open(path, "r+b") as f:
        f.seek(image_cache.HEADER_BYTES + 10)
        byte = f.read(1)
        f.seek(image_cache.HEADER_BYTES + 10)
        f.write(bytes([byte[0] ^ 0xFF]))


def garble_header(path):
    with open(path, "r+b") as f:
        f.write(b"\0" * 64)


STALE = {
    "an image changed": dict(images=change_image),
    "an image added": dict(images=add_image),
    "an image removed": dict(images=lambda paths, tmp: paths[:-2]),
    "another INPUT.SIZE": dict(loader=dict(size=48)),
    "another interpolation": dict(loader=dict(interpolation="bilinear")),
    "the file truncated": dict(file=truncate),
    "an image corrupted in the file": dict(file=corrupt_first_image),
    "the header garbled": dict(file=garble_header),
}


@pytest.mark.parametrize("change", list(STALE))
def test_a_stale_or_damaged_cache_is_rebuilt_and_not_used(tmp_path, images, change, capsys):
    what = STALE[change]
    first = prepare(make_loader(images), tmp_path / "cache")
    assert first.status == "built"
    paths = what.get("images", lambda p, t: p)(list(images), tmp_path)
    if "file" in what:
        what["file"](first.path)
    loader = make_loader(paths, **what.get("loader", {}))
    capsys.readouterr()
    again = prepare(loader, tmp_path / "cache")
    assert again.status == "built" and again.path == first.path
    assert "Rebuilding the test-image cache" in capsys.readouterr().out
    assert_same_batches(again.batches(4), loader)
    assert prepare(loader, tmp_path / "cache").status == "reused"


def test_a_cache_file_copied_from_another_dataset_is_rebuilt(tmp_path, images):
    other = make_images(str(tmp_path / "other"), n=len(images) - 1, prefix="other")
    foreign = prepare(make_loader(other), tmp_path / "cache", name="other_test")
    loader = make_loader(images)
    target = os.path.join(tmp_path / "cache", "set_test.images")
    with open(foreign.path, "rb") as src, open(target, "wb") as dst:
        dst.write(src.read())  # same shape (same number of images, same size), another dataset's pixels
    cache = prepare(loader, tmp_path / "cache")
    assert cache.status == "built"
    assert_same_batches(cache.batches(4), loader)


def test_a_killed_build_leaves_no_file_and_its_leftovers_are_removed(tmp_path, images, monkeypatch):
    directory = tmp_path / "cache"
    loader = make_loader(images)
    real_rows = image_cache.build.pil_rows

    def killed(*args, **kwargs):
        rows = real_rows(*args, **kwargs)
        yield next(rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(image_cache.build, "pil_rows", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare(loader, directory)
    assert os.listdir(directory) == [".build.lock"]  # atomic: no half-written cache, no temporary file
    monkeypatch.setattr(image_cache.build, "pil_rows", real_rows)

    leftover = directory / ".set_test.images.k1ll3d__.tmp"  # what a SIGKILLed build leaves
    leftover.write_bytes(b"\0" * 100)
    unrelated = directory / "notes.tmp"
    unrelated.write_text("not ours")
    assert prepare(loader, directory).status == "built"
    assert sorted(os.listdir(directory)) == [".build.lock", "notes.tmp", "set_test.images"]


# ------------------------------------------------------------------------------------------- fallbacks
def test_without_enough_disk_space_evaluation_reads_the_files(tmp_path, images, monkeypatch, capsys):
    class Usage:
        free = 1000

    monkeypatch.setattr(image_cache.build.shutil, "disk_usage", lambda path: Usage)
    loader = make_loader(images)
    cached = image_cache.CachedEvalLoader(loader, str(tmp_path / "cache"), "set_test")
    assert_same_batches(cached, loader)
    assert cached.cache is None
    out = capsys.readouterr().out
    assert "Note: evaluation reads the image files (no test-image cache): the cache for 11 images needs 49.0 KiB and " \
           f"{tmp_path / 'cache'} has 1000 bytes free" in out
    assert cache_files(tmp_path / "cache") == []


@pytest.mark.parametrize("transforms,reason", [
    ('["normalize", "instance_norm"]', "the test transform is [Resize, CenterCrop, ToTensor, Normalize, "
                                      "InstanceNormalization], not resize + center crop + to-tensor (+ normalize)"),
])
def test_a_test_transform_that_is_not_the_deterministic_one_falls_back(tmp_path, images, transforms, reason):
    loader = make_loader(images, transforms=transforms)
    assert image_cache.prepare_cache(loader, str(tmp_path / "cache"), "set_test") == (None, reason)
    cached = image_cache.CachedEvalLoader(loader, str(tmp_path / "cache"), "set_test")
    assert len(list(cached)) == len(loader) == 3


def test_without_normalize_the_cache_gives_to_tensor_output(tmp_path, images):
    loader = make_loader(images, transforms='["random_flip"]')
    assert_same_batches(prepare(loader, tmp_path / "cache").batches(4), loader)


# ---------------------------------------------------------------------------------------- loader fit
@pytest.mark.skipif(os.environ.get("VLPROMPT_ENGINE") == "dassl", reason='on the real Dassl, Dassl builds the loaders with the configured workers')
def test_loader_workers_are_capped_at_the_available_cpus(tmp_path, images, capsys):
    cpus = data_manager.available_cpus()
    assert cpus == len(os.sched_getaffinity(0))
    data_manager._NOTED_WORKERS.clear()
    loader = make_loader(images, workers=cpus + 7)
    assert loader.num_workers == cpus
    make_loader(images, workers=cpus + 7)
    assert capsys.readouterr().out.count(
        f"Note: DATALOADER.NUM_WORKERS {cpus + 7} > the {cpus} CPUs available; using {cpus} loader workers") == 1
    assert make_loader(images, workers=1).num_workers == 1


def test_training_loaders_keep_the_configured_workers_started_afresh_each_epoch(images):
    """Each worker draws its images' random augmentation from its own stream, seeded when an epoch starts: the
    number of workers and their restart every epoch decide the trained model (the original code's, and an
    exact resume's)."""
    cpus = data_manager.available_cpus()
    cfg = build_config(config_file=COOP_CONFIG, opts=["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", cpus + 3])
    data = [Datum(p, label=i % 3, domain=0, classname=f"c{i % 3}") for i, p in enumerate(images)]
    loader = build_data_loader(cfg, "RandomSampler", data, batch_size=2, tfm=build_transform(cfg, is_train=True),
                               is_train=True)
    assert loader.num_workers == cpus + 3 and loader.persistent_workers is False


# --------------------------------------------------------------------------------- opt-in tensor decoder
def test_the_torchvision_decoder_builds_its_own_cache_close_to_pil(tmp_path, images):
    loader = make_loader(images)
    pil = prepare(loader, tmp_path / "cache", name="set_test")
    tensor = prepare(loader, tmp_path / "cache", name="set_test_tv", decoder="torchvision")
    assert tensor.status == "built"
    with open(tensor.path, "rb") as f:
        assert b'"decoder": "torchvision-cpu"' in f.read(image_cache.HEADER_BYTES)
    # Its pixels are not PIL's (other JPEG decoder and resampling kernels), but close.
    diff = np.abs(np.asarray(tensor.images, dtype=np.int16) - np.asarray(pil.images, dtype=np.int16))
    assert diff.max() > 0
    assert diff.mean() < 2.0
    # A pil cache is not taken for a torchvision one (the key holds the decoder).
    os.replace(pil.path, tensor.path)
    assert prepare(loader, tmp_path / "cache", name="set_test_tv", decoder="torchvision").status == "built"
