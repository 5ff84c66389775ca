"""Atomic writes and checkpoint loading shared by the engine, the datasets and the results tools.

Every file vlprompt writes (checkpoints, caches, split files, result.json) goes through `atomic_write`:
the content lands in a temporary file next to the target and is renamed over it, so a crash or a
concurrent writer never leaves a truncated file behind. A temporary file is named
`.<target>.<host>.<pid>.<random>.tmp`; one whose process is gone (a killed run) is removed the next time
its target is written, or by `remove_stale_temp_files` when a run starts in its directory.
"""
import contextlib
import errno
import json
import os
import pickle
import socket
import tempfile

from .errors import CheckpointError, MissingFileError, OutputWriteError

TEMP_SUFFIX = ".tmp"


def _host():
    return socket.gethostname().replace(".", "-") or "host"


def _temp_prefix(path):
    return f".{os.path.basename(path)}.{_host()}.{os.getpid()}."


def _owner_is_gone(tmp_name):
    """A temp file of ours whose writing process (on this host) no longer exists."""
    parts = os.path.basename(tmp_name).rsplit(".", 4)  # ['.<target>', host, pid, random, 'tmp']
    if len(parts) != 5 or parts[-1] != "tmp" or parts[1] != _host() or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_temp_files(directory, subfolders=False, target=None):
    """Remove temp files left in `directory` by killed writers (only those whose process is gone): there
    and, with subfolders=True, in its immediate subfolders (a run's checkpoint folders) -- where a run writes
    its own temporary files, and nowhere else: no deeper walk, and no symlink followed (an output folder may
    hold a link to a dataset)."""
    prefix = f".{os.path.basename(target)}." if target else "."
    folders = [directory]
    if subfolders:
        with contextlib.suppress(OSError):
            folders += [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX) and \
                    entry.is_file(follow_symlinks=False) and _owner_is_gone(entry.path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)
                    removed.append(entry.path)
    return removed


def current_umask():
    """The process's umask, read without changing it (Linux: /proc/self/status), else by setting and
    restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode():
    """The mode open() gives a new file: 0o666 less the umask (so `umask 002` makes it group-writable)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file next to `path`; on success it replaces `path` in one rename. The file gets the
    mode open() would give it (the umask decides; mkstemp's own 0600 would hide results, checkpoints and
    caches from the group that shares an output tree or a data folder)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        remove_stale_temp_files(directory, target=path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=directory)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRORS and not isinstance(e, OutputWriteError):
            raise _write_error(path, e) from None
        raise


# What a full disk, a quota or a read-only or forbidden folder raise: the user's to fix, named in one line.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOTDIR,
                   errno.EEXIST}


def _write_error(path, error):
    if isinstance(error, OutputWriteError):
        return error
    cause = error.strerror or str(error)
    failure = OutputWriteError(f"Cannot write {path}: {cause}. Nothing was left half-written; free space, fix the "
                               "folder's permissions or choose another output folder, then re-run (a run resumes from "
                               "its last checkpoint)")
    failure.errno = error.errno  # callers that can do without the file (caches) still tell a full disk apart
    return failure


def write_json_atomic(obj, path, indent=4):
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=indent, separators=(",", ": "))


def torch_save_atomic(obj, path):
    import torch  # here, so that the table and data commands start without torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def pickle_dump_atomic(obj, path, pickler_cls=pickle.Pickler):
    with atomic_write(path, "wb") as f:
        pickler_cls(f, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)


# The classes that the original repositories' checkpoints pickle besides tensors and plain containers:
# Dassl saves the LR scheduler's state dict, and its warmup scheduler's holds the successor scheduler and
# the optimizer themselves. Nothing else is unpickled unless the user trusts the file (TRUST_ENV).
TRUST_ENV = "VLPROMPT_TRUST_CHECKPOINTS"


def _allowed_checkpoint_globals():
    import collections

    import torch

    return [torch.optim.lr_scheduler.CosineAnnealingLR, torch.optim.SGD, collections.defaultdict, dict]


def _allowed_global_names():
    """Qualified names a checkpoint may refer to: what torch's safe mode allows, plus
    _allowed_checkpoint_globals and torch's storage classes."""
    import torch

    names = {f"{c.__module__}.{c.__qualname__}" for c in _allowed_checkpoint_globals()}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        names.update(_get_allowed_globals())
    except (ImportError, AttributeError):  # another torch: the names a Dassl checkpoint needs
        names.update({"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                      "torch.Size", "torch.device"})
    names.update(f"torch.{name}" for name in dir(torch) if name.endswith("Storage"))
    return names


def _restricted_pickle_module():
    """A pickle module whose Unpickler resolves only _allowed_global_names (Python's documented
    "restricting globals" pattern). torch's safe mode refuses one thing real Dassl checkpoints hold: the
    scheduler's pickled successor refers to the SGD optimizer, whose state is a `defaultdict` with items
    (the momentum buffers), and torch's safe unpickler fills no defaultdict. Loading through this
    module builds that defaultdict and still runs nothing but the allowed classes."""
    import types

    allowed = _allowed_global_names()

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            import _compat_pickle

            # Python 2 names (protocol 2 writes __builtin__.dict), mapped as the unpickler itself maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            if f"{module}.{name}" not in allowed:
                raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
            return super().find_class(module, name)

    module = types.ModuleType("vlprompt_restricted_pickle")
    module.Unpickler = RestrictedUnpickler
    module.Pickler, module.dump, module.dumps = pickle.Pickler, pickle.dump, pickle.dumps
    module.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    module.loads = lambda data, **kw: RestrictedUnpickler(__import__("io").BytesIO(data), **kw).load()
    module.UnpicklingError = pickle.UnpicklingError
    return module


def trusted_files():
    """Files the user trusts fully (VLPROMPT_TRUST_CHECKPOINTS: paths separated by os.pathsep)."""
    value = os.environ.get(TRUST_ENV, "")
    return {os.path.realpath(os.path.expanduser(p)) for p in value.split(os.pathsep) if p}


def _unsafe_globals(path):
    import torch

    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 (old torch, or not a zip checkpoint)
        return None


def load_torch_file(path, map_location="cpu", what="checkpoint"):
    """torch.load that never runs code from the file unless the user trusts it.

    Tensors and plain containers load in torch's safe mode; so do the few optimizer/scheduler classes
    that Dassl-era checkpoints (the released CoOp/MaPLe weights) pickle. A file that needs anything else
    is refused with the class named, unless its path is listed in VLPROMPT_TRUST_CHECKPOINTS. Empty,
    truncated or corrupt files are refused with the path and what the file should be.
    """
    import torch

    if not os.path.isfile(path):
        raise MissingFileError(f"No {what} file at {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{_upper_first(what)} file {path} is empty (0 bytes): an interrupted download or copy? "
                              f"Replace it with the complete file.")
    if os.path.realpath(path) in trusted_files():
        print(f"Note: loading {path} with full unpickling, as {TRUST_ENV} asks")
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(_allowed_checkpoint_globals()):
            try:
                return torch.load(path, map_location=map_location, weights_only=True)
            except UnicodeDecodeError:  # pickled by Python 2-era code
                return torch.load(path, map_location=map_location, weights_only=True, encoding="latin1")
    except pickle.UnpicklingError as e:
        allowed = {f"{c.__module__}.{c.__qualname__}" for c in _allowed_checkpoint_globals()}
        unsafe = [name for name in (_unsafe_globals(path) or []) if name not in allowed]
        if unsafe:
            raise _executes_code(what, path, ", ".join(unsafe)) from None
        try:  # only allowed classes, which torch's safe mode could not assemble (a Dassl scheduler's successor)
            return torch.load(path, map_location=map_location, weights_only=False,
                              pickle_module=_restricted_pickle_module())
        except pickle.UnpicklingError as restricted:
            if "is not allowed" in str(restricted):
                raise _executes_code(what, path, _first_line(restricted)) from None
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            pass
        raise CheckpointError(f"{_upper_first(what)} file {path} is not a readable PyTorch checkpoint "
                              f"({_first_line(e)}); it may be truncated or corrupt: replace it.") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        # Garbage makes the unpickler fail in many ways; none of them is a bug of ours.
        raise CheckpointError(f"{_upper_first(what)} file {path} is not a readable PyTorch checkpoint "
                              f"({_first_line(e)}); it may be truncated or corrupt: replace it.") from None


def _executes_code(what, path, objects):
    return CheckpointError(
        f"{_upper_first(what)} file {path} contains Python objects that loading would have to execute ({objects}); "
        f"vlprompt loads only tensors and the optimizer/scheduler classes of Dassl checkpoints. If you trust this "
        f"file, add its path to {TRUST_ENV}.")


def _upper_first(text):
    return text[:1].upper() + text[1:]


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
