"""The data checker behind `vlprompt data check --root $DATA [NAMES...]`.

Per dataset it reports whether the folder is there, every missing file with where it comes from
(vlprompt.data.catalog), the image and class counts the reader produces next to the published ones,
and the images that cannot be opened. It reads through the registered readers (`read_full`), so what
it counts is what a run would use, and it writes nothing (no split file, no cache).

A dataset is usable when the reader reads it and every image opens; count mismatches and a missing
split file (a split would be generated, differing from the published one) are warnings.
"""
import concurrent.futures
import contextlib
import io
import os
from dataclasses import dataclass, field

from .catalog import CATALOG, STANDARD_NAMES, describe_source, where_from
from .errors import DatasetFormatError, DatasetLayoutError

IMAGE_CHECKS = ("skip", "open", "decode")


@dataclass
class DatasetReport:
    name: str
    folder: str = ""
    status: str = "ok"  # ok, warning, not found, missing, error
    missing: list = field(default_factory=list)  # (absolute path, where it comes from)
    notes: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # train/val/test -> number of images (None: not applicable)
    published: dict = field(default_factory=dict)
    classes: int = None
    published_classes: int = None
    base_new: tuple = None
    images_checked: int = 0
    unreadable: list = field(default_factory=list)  # (path, reason)
    error: str = ""

    @property
    def usable(self):
        return self.status in ("ok", "warning")

    def as_dict(self):
        d = dict(self.__dict__)
        d["usable"] = self.usable
        return d


def reader_registry(repo_root=None):
    """DATASET_REGISTRY with the codebase's readers registered (imported on first use)."""
    from vlprompt.engine import DATASET_REGISTRY

    if not _READERS:
        _READERS.append(import_readers(repo_root))
    return DATASET_REGISTRY


_READERS = []


def import_readers(repo_root=None):
    """Register the readers of a codebase's datasets/*.py (vlprompt.plugins: --repo, $VLPROMPT_REPO or the
    current directory; sys.path is left alone). Returns the codebase folder."""
    from vlprompt.plugins import find_codebase, import_package_modules

    folder = find_codebase(os.path.join("datasets", "caltech101.py"), repo_root, "the dataset readers (datasets/*.py)")
    import_package_modules(folder, "datasets")
    return folder


def _check_layout(report, info, root):
    """Missing catalog entries; False when the dataset cannot be read."""
    folder = os.path.join(root, info.folder)
    present = {e.path: os.path.exists(os.path.join(folder, e.path)) for e in info.entries}
    required = [e for e in info.entries if e.role == "required"]
    split = [e for e in info.entries if e.role == "split"]
    fallback = [e for e in info.entries if e.role == "fallback"]
    missing = [e for e in required if not present[e.path]]
    if split and not present[split[0].path]:
        if all(present[e.path] for e in fallback):
            report.notes.append(f"{split[0].path} is absent: a split will be generated with Python's random "
                                f"(seeded by SEED) and differs from the published one; get it from "
                                f"{split[0].resource.where}")
        else:
            missing += split + [e for e in fallback if not present[e.path]]
    report.missing = [(os.path.join(folder, e.path), describe_source(info, e)) for e in missing]
    return not missing


def _open_image(path, decode):
    from PIL import Image

    try:
        with Image.open(path) as img:
            if decode:
                img.convert("RGB")
        return None
    except Exception as e:  # any decoder error makes the image unusable
        return f"{type(e).__name__}: {e}"


def check_images(paths, decode=False, workers=8):
    """[(path, reason)] for the images that PIL cannot open (or decode)."""
    from vlprompt.progress import progress

    bad = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reasons = pool.map(lambda p: _open_image(p, decode), paths, chunksize=64)
        for path, reason in progress(zip(paths, reasons), total=len(paths), desc="checking images", unit="img",
                                     min_items=1000):
            if reason is not None:
                bad.append((path, reason))
    return bad


def check_dataset(name, root, opts=None, images="open", repo=None):
    """One dataset's DatasetReport. `opts`: extra config {KEY: value} (e.g. DATASET.CUSTOM.DIR)."""
    report = DatasetReport(name)
    info = CATALOG.get(name)
    root = os.path.abspath(os.path.expanduser(root))
    if info is not None:
        report.folder = os.path.join(root, info.folder)
        report.published = dict(zip(("train", "val", "test"), info.sizes))
        report.published_classes = info.classes
        if not os.path.isdir(report.folder):
            report.status = "not found"
            report.missing = [(os.path.join(report.folder, e.path), describe_source(info, e))
                              for e in info.entries if e.role != "fallback"]
            return report
        if not _check_layout(report, info, root):
            report.status = "missing"
            return report
    from vlprompt.config import build_config

    DATASET_REGISTRY = reader_registry(repo)
    if name not in DATASET_REGISTRY.registered_names():
        report.status, report.error = "error", f"no reader registered under {name!r}"
        return report
    if not hasattr(DATASET_REGISTRY.get(name), "read_full"):
        report.status = "error"
        report.error = f"{name}'s reader cannot be checked (it does not derive from vlprompt.data.BenchmarkDataset)"
        return report

    overrides = {"DATASET.ROOT": root, "DATASET.NAME": name, "DATASET.NUM_SHOTS": 0}
    overrides.update(opts or {})
    try:
        cfg = build_config(overrides=overrides)
        with contextlib.redirect_stdout(io.StringIO()):  # the readers' progress lines
            train, val, test = DATASET_REGISTRY.get(name).read_full(cfg)
    except DatasetFormatError as e:
        report.status, report.error = "error", e.detail
        return report
    except DatasetLayoutError as e:
        report.status, report.error = "missing", e.detail
        if e.path:
            source = ""
            if info is not None and os.path.abspath(e.path).startswith(report.folder + os.sep):
                source = where_from(name, os.path.relpath(e.path, report.folder))
            report.missing.append((e.path, source))
        report.notes = [n for n in report.notes if "a split will be generated" not in n]
        return report
    except Exception as e:  # a reader bug or an unexpected file: report it, check the other datasets
        report.status, report.error = "error", f"{type(e).__name__}: {e}"
        return report

    cls = DATASET_REGISTRY.get(name)
    test_only = getattr(cls, "test_only", False)
    report.folder = report.folder or root
    report.counts = {"train": None if test_only else len(train),
                     "val": None if (val is None or val is test or test_only) else len(val), "test": len(test)}
    labels = {item.label for item in (test if test_only else train)}
    report.classes = len(labels)
    if not test_only:
        m = -(-report.classes // 2)
        report.base_new = (m, report.classes - m)
    if report.published:
        for key, n in report.counts.items():
            published = report.published.get(key)
            if published is not None and n is not None and n != published:
                report.notes.append(f"{key} has {n:,} images; published: {published:,}")
    if report.published_classes and report.classes != report.published_classes:
        report.notes.append(f"{report.classes} classes; published: {report.published_classes}")

    if images != "skip":
        paths = sorted({item.impath for part in (train, val, test) if part for item in part})
        report.images_checked = len(paths)
        report.unreadable = check_images(paths, decode=images == "decode")
        if report.unreadable:
            report.status = "error"
            report.error = f"{len(report.unreadable)} of {len(paths)} images cannot be read"
            return report
    report.status = "warning" if report.notes else "ok"
    return report


def _fmt(n):
    return "-" if n is None else f"{n:,}"


def format_report(report):
    lines = [f"{report.name:<20} {report.status.upper() if not report.usable else report.status}"
             + (f"   {report.folder}" if report.folder else "")]
    if report.counts:
        sizes = " / ".join(_fmt(report.counts.get(k)) for k in ("train", "val", "test"))
        line = f"    images train/val/test: {sizes}"
        if report.published:
            line += f"   (published {' / '.join(_fmt(report.published.get(k)) for k in ('train', 'val', 'test'))})"
        lines.append(line)
        line = f"    classes: {report.classes}"
        if report.base_new:
            line += f" (base {report.base_new[0]} / new {report.base_new[1]})"
        if report.published_classes:
            line += f"   (published {report.published_classes})"
        lines.append(line)
    if report.images_checked:
        lines.append(f"    images opened: {report.images_checked:,}, unreadable: {len(report.unreadable)}")
    for path, reason in report.unreadable[:20]:
        lines.append(f"    unreadable: {path} ({reason})")
    if len(report.unreadable) > 20:
        lines.append(f"    ... and {len(report.unreadable) - 20} more unreadable images")
    for path, source in report.missing:
        lines.append(f"    missing: {path}" + (f"\n             {source}" if source else ""))
    for note in report.notes:
        lines.append(f"    warning: {note}")
    if report.error:
        lines.extend("    " + line for line in report.error.splitlines())
    return "\n".join(lines)


def check(root, names=None, opts=None, images="open", out=print, repo=None):
    """Check `names` (default: the 15 standard datasets) under `root`; print a report; return (reports, ok).

    ok: every named dataset is usable; without names, every dataset that is present is usable and at
    least one is present.
    """
    requested = list(names or [])
    reports = []
    if not os.path.isdir(os.path.expanduser(root)):
        out(f"Data root not found: {os.path.abspath(os.path.expanduser(root))} (--root or $DATA)")
        return reports, False
    out(f"Checking datasets under {os.path.abspath(os.path.expanduser(root))}")
    for item in requested or STANDARD_NAMES:
        # an item is a reader name, or (reader name, its dataset config's keys, the config's name)
        name, config_opts, label = item if isinstance(item, tuple) else (item, {}, None)
        report = check_dataset(name, root, opts={**config_opts, **(opts or {})}, images=images, repo=repo)
        if label and label != name:
            report.name = f"{name} ({label})"
        reports.append(report)
        out(format_report(report))
    if requested:
        ok = all(r.usable for r in reports)
    else:
        present = [r for r in reports if r.status != "not found"]
        ok = bool(present) and all(r.usable for r in present)
    usable = [r.name for r in reports if r.usable]
    out(f"\n{len(usable)} of {len(reports)} usable" + (f": {', '.join(usable)}" if usable else ""))
    return reports, ok
