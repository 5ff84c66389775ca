"""MODEL.BACKBONE.NAME is a CLIP name (cached download, checksum-verified) or a checkpoint path (JIT archive
or state dict); offline with no cached file, the error names the file and where to put it."""
import hashlib
import os
import subprocess
import sys

import pytest
import torch

from vlprompt import clip_loader
from vlprompt.clip_loader import ClipWeightsNotFound, clip, load_clip
from vlprompt.testing.tiny_clip import save_tiny_clip

from helpers import REPO_ROOT


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_state_dict_and_jit_files_load_to_the_same_model(tmp_path, monkeypatch):
    from vlprompt import clip_loader

    from_state = load_clip(save_tiny_clip(tmp_path / "tiny.pt"))
    jit = save_tiny_clip(tmp_path / "tiny-jit.pt", jit=True)
    # A TorchScript archive runs code when loaded: only OpenAI's released ones (by SHA-256) or trusted files load.
    with pytest.raises(ValueError, match="is a TorchScript archive that is not one of OpenAI's released CLIP"):
        load_clip(jit)
    monkeypatch.setenv("VLPROMPT_TRUST_CHECKPOINTS", str(jit))
    from_jit = load_clip(jit)
    assert same_weights(from_state, from_jit)
    monkeypatch.delenv("VLPROMPT_TRUST_CHECKPOINTS")
    monkeypatch.setattr(clip_loader, "released_sha256s", lambda: {clip_loader.file_sha256(str(jit))})
    assert same_weights(from_state, load_clip(jit))
    assert from_state.visual.conv1.weight.dtype == torch.float16  # clip.build_model's fp16 conversion
    assert from_state.ln_final.weight.dtype == torch.float32
    assert from_state.visual.input_resolution == 32 and from_state.text_projection.shape == (64, 48)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in torch.load(tmp_path / "tiny.pt").items()}}, wrapped)
    assert same_weights(load_clip(str(wrapped)), from_state)


def test_missing_or_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(ClipWeightsNotFound, match="CLIP checkpoint file not found: .*nope.pt"):
        load_clip(str(tmp_path / "nope.pt"))
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a CLIP checkpoint: it lacks"):
        load_clip(str(tmp_path / "other.pt"))
    with pytest.raises(ClipWeightsNotFound, match=r"'ViT-B/99' is neither a CLIP model name \['RN50'"):
        load_clip("ViT-B/99")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: any download attempt fails like an unreachable host; the cache is a temp dir."""
    def refuse(url, target):
        raise OSError(f"<urlopen error [Errno -3] Temporary failure in name resolution> ({url})")

    monkeypatch.setattr(clip_loader, "_download", refuse)
    monkeypatch.setenv("VLPROMPT_CLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_offline_name_without_cached_file_names_the_file_and_where_to_put_it(offline):
    with pytest.raises(ClipWeightsNotFound) as err:
        load_clip("ViT-B/16")
    message = str(err.value)
    assert str(offline / "ViT-B-16.pt") in message and "is missing" in message
    assert clip.clip._MODELS["ViT-B/16"] in message and "place the file at" in message


def test_a_cached_file_with_the_right_checksum_loads_without_network(offline, monkeypatch, tmp_path):
    offline.mkdir()
    path = save_tiny_clip(offline / "Tiny.pt")
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    monkeypatch.setitem(clip.clip._MODELS, "Tiny", f"https://example.invalid/clip/models/{sha}/Tiny.pt")
    model = load_clip("Tiny")
    assert model.visual.input_resolution == 32
    assert os.path.exists(path + ".sha256")  # verified once, remembered by size and mtime
    load_clip("Tiny")

    with open(path, "ab") as f:  # corrupt it: now it must not be used
        f.write(b"x")
    with pytest.raises(ClipWeightsNotFound, match="has the wrong SHA-256 checksum"):
        load_clip("Tiny")


def test_import_clip_works_without_pkg_resources():
    """setuptools>=81 no longer ships pkg_resources, which the `clip` package imports."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'pkg_resources': raise ModuleNotFoundError(\"No module named 'pkg_resources'\", name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import vlprompt, clip\n"
        "assert 'pkg_resources' not in sys.modules\n"
        "print(clip.tokenize('a photo').shape)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "torch.Size([1, 77])" in proc.stdout


def test_load_clip_reads_a_file_once_and_returns_a_fresh_module_each_time(tmp_path, monkeypatch):
    path = save_tiny_clip(tmp_path / "tiny.pt", arch="vit")
    reads = []
    real_read = clip_loader.read_clip_state_dict
    monkeypatch.setattr(clip_loader, "read_clip_state_dict", lambda p: reads.append(p) or real_read(p))
    monkeypatch.setattr(clip_loader, "_STATE_DICTS", {})
    torch.manual_seed(0)
    first = clip_loader.load_clip(path)
    after_first = torch.rand(1)
    torch.manual_seed(0)
    second = clip_loader.load_clip(path)
    assert len(reads) == 1 and first is not second
    assert torch.equal(torch.rand(1), after_first)  # the same random numbers drawn as a first load
    with torch.no_grad():
        next(first.parameters()).add_(1.0)  # a trainer changing its model leaves the others alone
    first.float()
    for (name, a), b in zip(second.state_dict().items(), clip_loader.load_clip(path).state_dict().values()):
        assert torch.equal(a, b) and a.dtype == b.dtype, name
    save_tiny_clip(tmp_path / "tiny.pt", arch="vit", seed=1)  # another file at that path is read again
    clip_loader.load_clip(path)
    assert len(reads) == 2
