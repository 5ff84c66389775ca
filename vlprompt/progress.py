"""Progress bars for long work (downloads, dataset indexing, cache building, evaluation).

One rule everywhere: a tqdm bar on stderr when stderr is a terminal, nothing otherwise, so redirected
logs (log.txt, Slurm output, CI) stay line-parseable. VLPROMPT_PROGRESS=1 forces the bars on, 0 off.
"""
import os
import sys


def progress_enabled(stream=None):
    forced = os.environ.get("VLPROMPT_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def progress(iterable=None, total=None, desc=None, unit="it", min_items=0, **kwargs):
    """`tqdm(iterable, ...)`, disabled when not on a terminal or when there are fewer than `min_items`."""
    from tqdm import tqdm

    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    disable = not progress_enabled() or (total is not None and total < min_items)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True,
                leave=False, **kwargs)
