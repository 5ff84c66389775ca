"""The test-image cache: each evaluation image decoded, resized and cropped once, then read from disk.

Three modules: `loader` (the trainer's side: attach, CachedEvalLoader), `build` (opening or building the
cache of a loader, the PIL and torchvision builders) and `files` (the file format, its key and validation).

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
from . import build, files, loader
from .build import pil_rows, prepare_cache, torchvision_rows, unsupported_reason
from .files import DECODERS, FORMAT_VERSION, HEADER_BYTES, SUFFIX, ImageCache, cache_key, open_valid
from .loader import CachedEvalLoader, attach, cache_dir, slot_name

__all__ = ["attach", "cache_dir", "slot_name", "prepare_cache", "CachedEvalLoader", "ImageCache", "DECODERS",
           "FORMAT_VERSION", "HEADER_BYTES", "SUFFIX", "cache_key", "open_valid", "pil_rows", "torchvision_rows",
           "unsupported_reason", "build", "files", "loader"]
