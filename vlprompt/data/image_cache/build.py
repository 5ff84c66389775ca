"""Opening or building the cache for an evaluation loader: what the loader must be for the cache to stand in
for it, and the two builders (PIL, exactly the loader's path; torchvision.io, opt-in, on the GPU)."""
import errno
import os
import os.path as osp
import shutil
import time
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from ...engine.loaders import describe_deterministic_test_transform, fit_num_workers
from .files import (HEADER_BYTES, SUFFIX, ImageCache, build_lock, cache_key, image_records, lookup_table, open_valid,
                    readable, remove_leftovers, write_cache)

FREE_SPACE_MARGIN = 512 * 2**20  # leave this much free after a build
_WRAPPERS = {("vlprompt.engine.builtin.data_manager", "DatasetWrapper"), ("dassl.data.data_manager", "DatasetWrapper")}


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
