"""Load a CLIP backbone by name ("ViT-B/16", "RN50", ...) or from a checkpoint file.

MODEL.BACKBONE.NAME is either one of `clip.available_models()` — downloaded once into
$VLPROMPT_CLIP_CACHE (default ~/.cache/clip, where OpenAI's `clip` keeps them) and checked against the
SHA-256 carried in its URL — or a path to a state-dict file (read in torch's safe mode) or a JIT archive
(loaded only if it is one of OpenAI's released checkpoints or listed in VLPROMPT_TRUST_CHECKPOINTS: loading
a TorchScript archive runs the code inside it). Either way the model is
rebuilt with `clip.build_model` (the non-JIT, hackable model, as CoOp/MaPLe do), on the CPU, with
CLIP's own fp16 weight conversion; the trainer then picks the precision.
"""
import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import urllib.request
import warnings

import torch

from ._clip_import import pkg_resources_stand_in
from .errors import CheckpointError, ConfigValueError, UserError
from .fileio import TRUST_ENV, atomic_write, load_torch_file, trusted_files


OPENAI_CLIP_DISTRIBUTIONS = ("clip-anytorch", "clip", "openai-clip")  # PyPI / git installs of OpenAI's CLIP
PRIVATE_NAME = "vlprompt._openai_clip"  # OpenAI's clip when a codebase's own `clip/` shadows it


class ClipNotImportable(UserError, ImportError):
    pass


def _is_openai_clip(module):
    """OpenAI's `clip.model.build_model(state_dict)`; the MaPLe repository's modified copy also needs
    `design_details`, which vlprompt (one unforked CLIP for every method) never passes."""
    build = getattr(getattr(module, "model", None), "build_model", None)
    if build is None:
        return False
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1


def _installed_openai_clip_dir():
    """The folder of the `clip` package that a pip-installed OpenAI CLIP distribution holds, or None."""
    for name in OPENAI_CLIP_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if any(str(f).replace(os.sep, "/") == "clip/__init__.py" for f in dist.files or ()):
            path = os.path.dirname(os.path.abspath(str(dist.locate_file("clip/__init__.py"))))
            if os.path.isfile(os.path.join(path, "model.py")):
                return path
    return None


def _load_private(package_dir):
    """OpenAI's clip package from `package_dir`, as module PRIVATE_NAME (`import clip` stays the codebase's)."""
    spec = importlib.util.spec_from_file_location(PRIVATE_NAME, os.path.join(package_dir, "__init__.py"),
                                                  submodule_search_locations=[package_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PRIVATE_NAME] = module  # its relative imports (.clip, .model) resolve through it
    try:
        with pkg_resources_stand_in():
            spec.loader.exec_module(module)
        importlib.import_module(PRIVATE_NAME + ".model")
    except BaseException:
        for name in [n for n in sys.modules if n == PRIVATE_NAME or n.startswith(PRIVATE_NAME + ".")]:
            del sys.modules[name]
        raise
    return module


def import_clip():
    """OpenAI's `clip` package (clip-anytorch on PyPI), also where setuptools>=81 removed `pkg_resources`.

    A codebase may ship its own `clip/` (the MaPLe repository does: a modified copy whose `build_model`
    needs `design_details`); run from its root, `import clip` finds that one. vlprompt then loads
    OpenAI's from its installed distribution under a private name and leaves `clip` to the codebase.
    """
    installed = _installed_openai_clip_dir()
    module = sys.modules.get("clip")
    if module is None:
        spec = importlib.util.find_spec("clip")
        origin = os.path.dirname(os.path.abspath(spec.origin)) if spec is not None and spec.origin else None
        if origin is not None and (installed is None or os.path.realpath(origin) == os.path.realpath(installed)):
            with warnings.catch_warnings(), pkg_resources_stand_in():
                warnings.simplefilter("ignore")  # pkg_resources' deprecation notice
                module = importlib.import_module("clip")
                importlib.import_module("clip.model")
    if module is not None and _is_openai_clip(module):
        return module
    if installed is not None:
        if PRIVATE_NAME in sys.modules:
            return sys.modules[PRIVATE_NAME]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _load_private(installed)
    found = f" (the `clip` found at {module.__file__ if module is not None else origin} is not it: its " \
            "build_model is not OpenAI's, e.g. the MaPLe repository's modified copy)" \
        if module is not None or origin is not None else ""
    raise ClipNotImportable(f"vlprompt needs OpenAI's CLIP package{found}. Install it: pip install clip-anytorch")


clip = import_clip()


class ClipWeightsNotFound(UserError, FileNotFoundError):
    pass


def clip_cache_dir():
    return os.path.expanduser(os.environ.get("VLPROMPT_CLIP_CACHE", "~/.cache/clip"))


def available_models():
    return clip.available_models()


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path, expected_sha256):
    """Check the file's SHA-256, remembering a success (by size and mtime) in `<path>.sha256`."""
    stat = os.stat(path)
    stamp = f"{expected_sha256} {stat.st_size} {stat.st_mtime_ns}"
    marker = path + ".sha256"
    with contextlib.suppress(OSError):
        with open(marker) as f:
            if f.read().strip() == stamp:
                return True
    if _sha256(path) != expected_sha256:
        return False
    with contextlib.suppress(OSError):
        with atomic_write(marker, "w") as f:
            f.write(stamp + "\n")
    return True


def _download(url, target):
    print(f"Downloading CLIP weights from {url} to {target}")
    with urllib.request.urlopen(url, timeout=60) as source, atomic_write(target, "wb") as output:
        while True:
            buffer = source.read(1 << 20)
            if not buffer:
                break
            output.write(buffer)


def resolve_weights_file(name, download_root=None):
    """Path of the checkpoint for a CLIP model name, downloading it if it is not cached."""
    models = clip.clip._MODELS
    if name not in models:
        raise ConfigValueError(f"Unknown CLIP model {name!r}: expected one of {list(models)} or a path to a checkpoint file")
    url = models[name]
    expected = url.split("/")[-2]
    root = download_root or clip_cache_dir()
    target = os.path.join(root, os.path.basename(url))
    if os.path.isfile(target) and _verified(target, expected):
        return target
    problem = "is missing" if not os.path.exists(target) else "has the wrong SHA-256 checksum"
    try:
        _download(url, target)
    except Exception as e:
        raise ClipWeightsNotFound(
            f"CLIP weights for {name!r}: {target} {problem}, and downloading {url} failed ({e}). "
            f"On a machine with internet access download that URL and place the file at {target} "
            f"(or set VLPROMPT_CLIP_CACHE to the folder holding it, or set MODEL.BACKBONE.NAME to the file's path)."
        ) from None
    if not _verified(target, expected):
        raise RuntimeError(f"Downloaded {url} to {target}, but its SHA-256 does not match {expected}")
    return target


def released_sha256s():
    """The SHA-256 of every CLIP checkpoint OpenAI released (each is part of its download URL)."""
    return {url.split("/")[-2] for url in clip.clip._MODELS.values()}


def is_torchscript_archive(path):
    """A TorchScript (JIT) archive: a zip holding compiled code (`<name>/code/...`) and `constants.pkl`.
    Read from the zip's directory alone; nothing in it is loaded."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.split("/", 1)[-1].startswith("code/") for n in names) and \
        any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names)


def _load_torchscript(path, what):
    """The state dict of a TorchScript archive: loading one runs the code it holds (it can create or overwrite
    any file), so only OpenAI's released checkpoints (their SHA-256 is in their URLs) or a file listed in
    VLPROMPT_TRUST_CHECKPOINTS are loaded this way."""
    if file_sha256(path) not in released_sha256s() and os.path.realpath(path) not in trusted_files():
        raise CheckpointError(
            f"CLIP weights file {path} is a TorchScript archive that is not one of OpenAI's released CLIP checkpoints "
            f"(its SHA-256 is none of theirs), and loading a TorchScript archive runs the code inside it, so it was "
            f"not loaded. Convert it to a state dict where you trust it: python -c \"import torch; torch.save(torch."
            f"jit.load('{path}', map_location='cpu').state_dict(), '{os.path.splitext(path)[0]}-state_dict.pt')\" "
            f"and use that file, or add its path to {TRUST_ENV} if you trust it.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.load(path, map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001 (a broken archive: say so, it is the user's file)
            raise CheckpointError(f"CLIP weights file {path} looks like a TorchScript archive but cannot be read "
                                  f"({type(e).__name__}); it may be truncated or corrupt: replace it with the complete "
                                  f"{what}.") from None


def read_clip_state_dict(path):
    """State dict from a JIT archive (OpenAI's release format, loaded only where trusted: _load_torchscript)
    or a torch.save'd state dict (read in torch's safe mode)."""
    what = ("CLIP weights file (a JIT archive as OpenAI releases them, or a torch.save'd CLIP state dict)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"CLIP weights file {path} is empty (0 bytes): an interrupted download or copy? "
                              f"Replace it with the complete {what}.")
    if is_torchscript_archive(path):
        return _load_torchscript(path, what)
    try:
        obj = load_torch_file(path, what="CLIP weights")
    except CheckpointError as e:
        raise CheckpointError(f"{e} It should be a {what}.") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a {what}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


_FILE_DIGESTS = {}


def file_sha256(path):
    """SHA-256 of a file, remembered for this process by (path, size, mtime)."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = _sha256(path)
    return _FILE_DIGESTS[key]


def weights_sha256(name_or_path):
    """The SHA-256 of the CLIP weights a backbone name or path stands for, without loading them: for a
    released model the checksum its download URL carries, for a file its own."""
    if not name_or_path:
        raise ConfigValueError("MODEL.BACKBONE.NAME is empty: set it to a CLIP model name (e.g. ViT-B/16) or a checkpoint path")
    if name_or_path in clip.clip._MODELS:
        return clip.clip._MODELS[name_or_path].split("/")[-2]
    path = os.path.abspath(os.path.expanduser(name_or_path))
    if not os.path.isfile(path):
        raise ClipWeightsNotFound(
            f"MODEL.BACKBONE.NAME {name_or_path!r} is neither a CLIP model name {list(clip.clip._MODELS)} "
            f"nor a checkpoint file (CLIP checkpoint file not found: {path})")
    return file_sha256(path)


def load_clip(name_or_path, download_root=None):
    """Build CLIP (eval mode, on the CPU, fp16 weights as `clip.build_model` makes them)."""
    if not name_or_path:
        raise ConfigValueError("MODEL.BACKBONE.NAME is empty: set it to a CLIP model name (e.g. ViT-B/16) or a checkpoint path")
    if name_or_path in clip.clip._MODELS:
        path = resolve_weights_file(name_or_path, download_root)
    else:
        path = os.path.abspath(os.path.expanduser(name_or_path))
        if not os.path.isfile(path):
            raise ClipWeightsNotFound(
                f"MODEL.BACKBONE.NAME {name_or_path!r} is neither a CLIP model name {list(clip.clip._MODELS)} "
                f"nor a checkpoint file (CLIP checkpoint file not found: {path})")
    key = (os.path.realpath(path), file_sha256(path))
    state_dict = _STATE_DICTS.pop(key, None)
    if state_dict is None:
        state_dict = read_clip_state_dict(path)
        required = ("positional_embedding", "token_embedding.weight", "ln_final.weight", "text_projection")
        missing = [k for k in required if k not in state_dict]
        if missing:
            raise CheckpointError(f"{path} is not a CLIP checkpoint: it lacks {missing}")
    _STATE_DICTS[key] = state_dict  # most recently used last
    while len(_STATE_DICTS) > STATE_DICT_CACHE_SIZE:
        del _STATE_DICTS[next(iter(_STATE_DICTS))]
    # A new module every call (trainers change its precision and device), built as in a fresh process:
    # build_model's random initialisation draws the same random numbers either way, and it deletes keys
    # from the dict it is given, hence the copy. The tensors are copied into the model, never shared.
    return clip.model.build_model(dict(state_dict)).eval()  # OpenAI's (import_clip)


# The CPU state dicts load_clip read, by (real path, SHA-256): a long-lived worker (vlprompt.launchers.local)
# that runs many runs reads the weights once.
STATE_DICT_CACHE_SIZE = 2
_STATE_DICTS = {}


def tokenize(texts, context_length=77, truncate=False):
    return clip.tokenize(texts, context_length=context_length, truncate=truncate)


def bpe_length(text):
    """Number of BPE tokens of `text` (without SOT/EOT), as CoOp computes class-name lengths."""
    return len(clip.clip._tokenizer.encode(text))
