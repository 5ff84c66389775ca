"""The cache file: its format (a 16 KiB header, then N x 3 x H x W bytes), its key, validation, writing and the
build lock; and the opened cache (`ImageCache`) that yields the loader's batches."""
import contextlib
import hashlib
import json
import os
import os.path as osp
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image

from ...fileio import atomic_write
from ...progress import progress

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
