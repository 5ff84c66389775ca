"""The test-image cache: each evaluation image decoded, resized and cropped once, then read from disk.

The test transform is deterministic (Resize shorter edge -> CenterCrop -> ToTensor -> Normalize), so
its output can be computed once per dataset split and reused by every later evaluation: other seeds,
the base and new halves, other methods, released weights. The cache holds the cropped pixels as uint8
(what ToTensor reads), built with the very PIL path the loader uses (the loader's own DatasetWrapper
and read_image, with ToTensor replaced by "keep the bytes"). Evaluation then reads batches from a
memory-mapped file, with no JPEG decoding, and maps the bytes to the model's input on the model's
device through a 3 x 256 lookup table computed by the pipeline's own ToTensor and Normalize: what
reaches the model is bit for bit what the JPEG path gives it.

One file per dataset split and transform, `<cache dir>/<dataset>_<split>_<slot>.images`:
a 16 KiB header (magic line, JSON: format, key, shape, transform settings, checksums of 64 sampled
rows), then N x 3 x H x W bytes. The key is a hash of the format version, the transform settings,
the decoder, the Pillow and torchvision versions and the image list (path, size, mtime of every file);
a file is used only if its key, exact size and sampled rows match, else it is rebuilt in place.
Builds write a temporary file next to the target and rename it (vlprompt.fileio.atomic_write); one
build at a time per cache directory (an flock, released when a process dies), and a build removes
what a killed build left behind.

Where: TEST.IMAGE_CACHE_DIR, else $VLPROMPT_CACHE/test_images, else ~/.cache/vlprompt/test_images.
Off: TEST.IMAGE_CACHE False. Disk: N x 3 x 224 x 224 bytes (ImageNet's 50,000 val images: 7.5 GB).
TEST.IMAGE_CACHE_DECODER torchvision (opt-in) builds with torchvision.io decoding and tensor resizing
(on the GPU when evaluating on one): faster on a GPU, not bit-identical to PIL, so a separate cache.
"""
import contextlib
import errno
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from ..engine.loaders import describe_deterministic_test_transform, fit_num_workers
from ..fileio import atomic_write
from ..progress import progress
from ..resume import capture_rng_state, restore_rng_state
from ..validation import check_choice

try:
    import fcntl
except ImportError:  # not on Windows: builds are then not serialised
    fcntl = None

FORMAT_VERSION = 1
MAGIC = b"VLPROMPT-IMAGES\n"
HEADER_BYTES = 16384  # magic, header length, JSON header, padding; the pixels start here
SUFFIX = ".images"
SAMPLED_ROWS = 64
DECODERS = ("pil", "torchvision")
FREE_SPACE_MARGIN = 512 * 2**20  # leave this much free after a build
_WRAPPERS = {("vlprompt.engine.builtin.data_manager", "DatasetWrapper"), ("dassl.data.data_manager", "DatasetWrapper")}


# ------------------------------------------------------------------------------------------ trainer seam
def attach(trainer):
    """Called once the trainer's loaders exist: fit the loaders' workers to the machine, and (unless
    TEST.IMAGE_CACHE is False) make the validation and test loaders read the image cache."""
    cfg = trainer.cfg
    # Evaluation loaders only: how many workers a training loader has decides which random augmentation each
    # image gets (each worker has its own random stream), so changing it would change the trained model.
    for name in ("val_loader", "test_loader"):
        loader = getattr(trainer, name, None)
        if isinstance(loader, DataLoader) and loader.num_workers > 0:
            loader.num_workers = fit_num_workers(loader.num_workers)  # Dassl's loaders keep the configured 8
    if not cfg.TEST.get("IMAGE_CACHE", True):
        return
    decoder = cfg.TEST.get("IMAGE_CACHE_DECODER", "pil")
    check_choice("TEST.IMAGE_CACHE_DECODER", decoder, DECODERS)
    for name, split in (("val_loader", "val"), ("test_loader", "test")):
        loader = getattr(trainer, name, None)
        if isinstance(loader, DataLoader):
            setattr(trainer, name, CachedEvalLoader(loader, cache_dir(cfg), slot_name(cfg, split, decoder),
                                                    decoder=decoder, device=trainer.device))


def cache_dir(cfg=None):
    configured = cfg.TEST.get("IMAGE_CACHE_DIR", "") if cfg is not None else ""
    if configured:
        return osp.abspath(osp.expanduser(configured))
    root = os.environ.get("VLPROMPT_CACHE") or osp.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "vlprompt")
    return osp.abspath(osp.expanduser(osp.join(root, "test_images")))


def slot_name(cfg, split, decoder="pil"):
    """The file name for one dataset split: a new image list for the same split replaces the old file."""
    data = cfg.DATASET
    what = {"dataset": data.NAME, "root": osp.abspath(osp.expanduser(data.ROOT)), "split": split,
            "subsample": data.get("SUBSAMPLE_CLASSES", "all"), "source": list(data.SOURCE_DOMAINS),
            "target": list(data.TARGET_DOMAINS), "size": list(cfg.INPUT.SIZE), "interp": cfg.INPUT.INTERPOLATION,
            "decoder": decoder}
    slot = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9.-]+', '-', data.NAME)}_{split}_{slot}"


class CachedEvalLoader:
    """Stands in for an evaluation DataLoader: the same batches (same keys, order and values), read from
    the image cache; the cache is opened or built on the first iteration. Falls back to the wrapped
    loader, with a one-line note, when the cache cannot be used."""

    def __init__(self, loader, directory, name, decoder="pil", device="cpu"):
        self.loader = loader
        self.directory, self.name, self.decoder, self.device = directory, name, decoder, torch.device(device)
        self.cache = None
        self._prepared = False

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):  # dataset, batch_size, sampler, ... of the wrapped loader
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self):
        if not self._prepared:
            self._prepared = True
            # Building or checking the cache must not move the random streams that training draws from.
            rng = capture_rng_state()
            try:
                self.cache, reason = prepare_cache(self.loader, self.directory, self.name, decoder=self.decoder,
                                                   device=self.device)
            finally:
                restore_rng_state(rng)
            if self.cache is None:
                print(f"Note: evaluation reads the image files (no test-image cache): {reason}")
        if self.cache is None:
            return iter(self.loader)
        # A DataLoader iterator draws its base seed from torch's generator: draw it too, so that a run that
        # evaluates between epochs (TEST.FINAL_MODEL best_val) trains the same model with or without the cache.
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        return self.cache.batches(self.loader.batch_size, self.device)


# ------------------------------------------------------------------------------------------- the cache
class ImageCache:
    """An opened, validated cache: `images` (N x 3 x H x W uint8 memmap) for `data_source`, in order."""

    def __init__(self, path, images, data_source, lut, status):
        self.path, self.images, self.data_source, self.lut, self.status = path, images, data_source, lut, status

    def __len__(self):
        return len(self.data_source)

    def batches(self, batch_size, device="cpu"):
        """The DatasetWrapper's batches: img (on `device`, normalised there), label, domain, impath, index."""
        device = torch.device(device)
        lut = self.lut.to(device)
        n = len(self.data_source)
        pin = device.type == "cuda"

        def read(start):  # runs one batch ahead, in a thread, while the model works on the previous one
            rows = torch.from_numpy(np.array(self.images[start:start + batch_size]))
            return rows.pin_memory() if pin else rows

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(read, 0)
            for start in range(0, n, batch_size):
                rows = pending.result()
                if start + batch_size < n:
                    pending = pool.submit(read, start + batch_size)
                items = self.data_source[start:start + batch_size]
                yield {"label": torch.tensor([item.label for item in items]),
                       "domain": torch.tensor([item.domain for item in items]),
                       "impath": [item.impath for item in items],
                       "index": torch.arange(start, start + len(items)),
                       "img": apply_lut(rows.to(device, non_blocking=True), lut)}


def apply_lut(rows, lut):
    """uint8 N x 3 x H x W -> float32 through a per-channel table (3 x 256) on the rows' device."""
    out = torch.empty(rows.shape, dtype=lut.dtype, device=rows.device)
    for c in range(rows.shape[1]):
        out[:, c] = lut[c][rows[:, c].int()]
    return out


def lookup_table(to_tensor):
    """What `to_tensor` (the pipeline's own ToTensor [+ Normalize]) makes of each byte value, per channel."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(1, 256, 1), 3, axis=2)
    return to_tensor(Image.fromarray(ramp, mode="RGB"))[:, 0, :].contiguous()


def unsupported_reason(loader):
    """Why `loader` is not one the cache can stand in for (None if it is)."""
    dataset = loader.dataset
    if (type(dataset).__module__, type(dataset).__name__) not in _WRAPPERS:
        return f"the loader's dataset is {type(dataset).__name__}, not Dassl's DatasetWrapper"
    if getattr(dataset, "return_img0", False) or getattr(dataset, "k_tfm", 1) != 1:
        return "the loader returns extra images (DATALOADER.RETURN_IMG0 / K_TRANSFORMS)"
    if type(loader.sampler) is not SequentialSampler or loader.batch_sampler is None or loader.drop_last:
        return f"the loader's sampler is {type(loader.sampler).__name__}, not sequential"
    if isinstance(dataset.transform, (list, tuple)) or dataset.transform is None:
        return "the loader applies several or no transforms"
    return None


def prepare_cache(loader, directory, name, decoder="pil", device="cpu", num_workers=None):
    """Open the cache for evaluation `loader`, building it if it is missing or stale.

    Returns (ImageCache, None), or (None, reason) when the cache cannot be used (the transform is not the
    deterministic one, no disk space, ...). A missing or unreadable image raises, naming the file, as the
    loader would.
    """
    reason = unsupported_reason(loader)
    if reason:
        return None, reason
    wrapper = loader.dataset
    geometry, to_tensor, settings, reason = describe_deterministic_test_transform(wrapper.transform)
    if reason:
        return None, reason
    device = torch.device(device)
    decoder_id = decoder if decoder == "pil" else f"{decoder}-{device.type}"
    data_source = wrapper.data_source
    key = cache_key(image_records(item.impath for item in data_source), settings, decoder_id)
    shape = (len(data_source), 3, *settings["center_crop"])  # CenterCrop keeps (h, w)
    path = osp.join(directory, name + SUFFIX)
    lut = lookup_table(to_tensor)

    images, stale = open_valid(path, key, shape)
    if images is not None:
        print(f"Reading test images from the cache {path} ({shape[0]:,} images, no decoding)")
        return ImageCache(path, images, data_source, lut, "reused"), None

    need = HEADER_BYTES + int(np.prod(shape))
    try:
        os.makedirs(directory, exist_ok=True)
        free = shutil.disk_usage(directory).free
    except OSError as e:
        return None, f"cannot use the cache directory {directory} ({e})"
    if free < need + FREE_SPACE_MARGIN:
        return None, (f"the cache for {shape[0]:,} images needs {readable(need)} and {directory} has "
                      f"{readable(free)} free (TEST.IMAGE_CACHE_DIR or $VLPROMPT_CACHE choose another place)")
    workers = fit_num_workers(loader.num_workers if num_workers is None else num_workers)
    with build_lock(directory):
        images, stale = open_valid(path, key, shape)  # another process may have built it meanwhile
        if images is None:
            if osp.exists(path):
                print(f"Rebuilding the test-image cache {path}: {stale}")
            remove_leftovers(directory)
            start = time.time()
            try:
                rows = (pil_rows(wrapper, geometry, workers) if decoder == "pil"
                        else torchvision_rows(data_source, settings, workers, device))
                write_cache(path, key, shape, rows, {"transform": settings, "decoder": decoder_id})
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                    raise
                return None, f"cannot write the cache {path} ({e})"
            seconds = time.time() - start
            images, stale = open_valid(path, key, shape)
            if images is None:
                raise RuntimeError(f"The test-image cache {path} just built does not validate: {stale}")
            print(f"Built the test-image cache {path}: {shape[0]:,} images in {seconds:.1f} s "
                  f"({shape[0] / max(seconds, 1e-9):.0f} images/s, {max(workers, 1)} process(es), {decoder} decoder)")
            return ImageCache(path, images, data_source, lut, "built"), None
    print(f"Reading test images from the cache {path} ({shape[0]:,} images, no decoding)")
    return ImageCache(path, images, data_source, lut, "reused"), None


def readable(n_bytes):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes} bytes"


def image_records(paths):
    """[path, size, mtime_ns] per image: a changed, added or removed file changes the key."""
    records = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"Image file not found: {path}") from None
        records.append([path, st.st_size, st.st_mtime_ns])
    return records


def cache_key(records, settings, decoder="pil"):
    what = {"format": FORMAT_VERSION, "transform": settings, "decoder": decoder, "pillow": PIL.__version__,
            "torchvision": torchvision.__version__.split("+")[0], "images": records}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def sampled_rows(n):
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, SAMPLED_ROWS))}) if n else []


def row_digest(row):
    return hashlib.blake2b(np.ascontiguousarray(row).data, digest_size=16).hexdigest()


def read_header(path):
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES or not head.startswith(MAGIC):
        return None
    length = int.from_bytes(head[len(MAGIC):len(MAGIC) + 8], "little")
    try:
        header = json.loads(head[len(MAGIC) + 8:len(MAGIC) + 8 + length].decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def open_valid(path, key, shape):
    """(memmap, None) if `path` is a complete cache for `key` and `shape`, else (None, why not)."""
    if not osp.isfile(path):
        return None, "no cache file"
    header = read_header(path)
    if header is None:
        return None, "its header is unreadable"
    if header.get("format") != FORMAT_VERSION:
        return None, f"format {header.get('format')} (this vlprompt writes {FORMAT_VERSION})"
    if header.get("key") != key:
        return None, "it was built for other images or transform settings"
    if list(header.get("shape", ())) != list(shape):
        return None, f"its shape {header.get('shape')} is not {list(shape)}"
    size, expected = osp.getsize(path), HEADER_BYTES + int(np.prod(shape))
    if size != expected:
        return None, f"it holds {size:,} bytes, not {expected:,} (truncated?)"
    images = np.memmap(path, dtype=np.uint8, mode="r", offset=HEADER_BYTES, shape=tuple(shape))
    digests = header.get("row_digests", {})
    if sorted(int(i) for i in digests) != sampled_rows(shape[0]):
        return None, "its checksums are missing"
    for index, digest in digests.items():
        if row_digest(images[int(index)]) != digest:
            return None, f"image {index} does not match its checksum (corrupt file)"
    return images, None


def write_cache(path, key, shape, rows, extra):
    """Write (start, uint8 tensor) batches to `path` atomically: header last, then one rename."""
    n = shape[0]
    with atomic_write(path, "w+b") as f:
        f.truncate(HEADER_BYTES + int(np.prod(shape)))
        images = np.memmap(f, dtype=np.uint8, mode="r+", offset=HEADER_BYTES, shape=shape)
        filled = 0
        with progress(total=n, desc="Caching test images", unit="img") as bar:
            for start, batch in rows:
                images[start:start + len(batch)] = batch.numpy()
                filled += len(batch)
                bar.update(len(batch))
        if filled != n:
            raise RuntimeError(f"Cached {filled} of {n} test images")
        header = dict(extra, format=FORMAT_VERSION, key=key, shape=list(shape),
                      row_digests={str(i): row_digest(images[i]) for i in sampled_rows(n)},
                      created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        images.flush()
        del images
        text = json.dumps(header, sort_keys=True).encode()
        if len(MAGIC) + 8 + len(text) > HEADER_BYTES:
            raise ValueError(f"Cache header too long ({len(text)} bytes)")
        f.seek(0)
        f.write(MAGIC + len(text).to_bytes(8, "little") + text)


@contextlib.contextmanager
def build_lock(directory):
    """One build at a time per cache directory; the kernel drops the lock of a process that dies."""
    if fcntl is None:
        yield
        return
    with open(osp.join(directory, ".build.lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"Waiting for another process building a test-image cache in {directory}")
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: build unserialised
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def remove_leftovers(directory):
    """Temporary files of killed builds (under the build lock no other build is running)."""
    for entry in os.listdir(directory):
        if entry.startswith(".") and entry.endswith(".tmp") and SUFFIX + "." in entry:
            with contextlib.suppress(FileNotFoundError):
                os.remove(osp.join(directory, entry))
                print(f"Removed {entry}, left by an interrupted cache build")


# ------------------------------------------------------------------------------------------ builders
def to_uint8_chw(img):
    """The bytes ToTensor reads from a PIL image, without its conversion to float."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class _PILGeometry(Dataset):
    """The loader's own DatasetWrapper (read_image + transform), with ToTensor/Normalize replaced by
    `to_uint8_chw`: exactly the pixels the JPEG path converts to floats."""

    def __init__(self, wrapper, geometry):
        import copy

        self.wrapper = copy.copy(wrapper)
        self.wrapper.transform = type(geometry)(list(geometry.transforms) + [to_uint8_chw])
        self.wrapper.return_img0 = False

    def __len__(self):
        return len(self.wrapper)

    def __getitem__(self, index):
        return self.wrapper[index]["img"]


def pil_rows(wrapper, geometry, workers, batch_size=64):
    loader = DataLoader(_PILGeometry(wrapper, geometry), batch_size=batch_size, shuffle=False, num_workers=workers)
    start = 0
    for batch in loader:
        yield start, batch
        start += len(batch)


def tensor_geometry(img, settings):
    """Resize + center crop of a uint8 CHW tensor with torchvision's tensor kernels (not PIL's)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    r = settings["resize"]
    img = TF.resize(img, [r["size"]], interpolation=InterpolationMode(r["interpolation"]), max_size=r["max_size"],
                    antialias=r["antialias"])
    return TF.center_crop(img, list(settings["center_crop"]))


def decode_file(path, data=None, device="cpu"):
    """An RGB uint8 CHW tensor from torchvision.io (JPEGs on `device`; other formats on the CPU)."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    device = torch.device(device)
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        data = read_file(path) if data is None else data
        if device.type == "cuda" and data[:2].tolist() == [0xFF, 0xD8]:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        return decode_image(data, mode=ImageReadMode.RGB).to(device)


class _TensorGeometry(Dataset):
    def __init__(self, paths, settings, decode):
        self.paths, self.settings, self.decode = paths, settings, decode

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        from torchvision.io import read_file

        path = self.paths[index]
        try:
            if not self.decode:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return read_file(path)
            return tensor_geometry(decode_file(path), self.settings)
        except RuntimeError as e:
            raise OSError(f"Cannot read image file {path}: {e}") from e


def torchvision_rows(data_source, settings, workers, device, batch_size=64):
    """Opt-in builder: torchvision.io decoding and tensor resizing; on a GPU, file bytes are read by the
    workers and decoded, resized and cropped on the device. Not bit-identical to PIL."""
    paths = [item.impath for item in data_source]
    on_gpu = torch.device(device).type == "cuda"
    loader = DataLoader(_TensorGeometry(paths, settings, decode=not on_gpu), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=list)
    start = 0
    for batch in loader:
        if on_gpu:
            batch = [tensor_geometry(decode_file(p, data, device), settings).cpu()
                     for p, data in zip(paths[start:start + len(batch)], batch)]
        yield start, torch.stack(batch)
        start += len(batch)


__all__ = ["attach", "cache_dir", "prepare_cache", "CachedEvalLoader", "ImageCache", "DECODERS", "FORMAT_VERSION"]
