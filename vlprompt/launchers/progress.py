"""What a protocol's runs are doing, for people watching a launcher.

A run's progress is read from its own log (`<output dir>/log.txt`, the latest attempt's: the engine
rotates older ones away), so it works for every launcher and every engine: Dassl's train line

    epoch [2/5] batch [10/20] time 0.1 (0.2) data 0.0 (0.0) loss 1.2 (1.4) acc 50.0 (40.0) lr 2e-03 eta 0:01:23

gives the epoch, the batch and the ETA of the whole run; "Finish training" or "Evaluate on the *test* set"
after it means it is testing. (A method prints the line every TRAIN.PRINT_FREQ batches, and on every batch
when an epoch has fewer.)

`ProgressDisplay` shows it: on a terminal, one tqdm bar per running run (a local launcher's slot, or a
Slurm job) under a bar for the whole protocol; without one (a log file, CI, `nohup`), one status line every
`every_s` seconds. VLPROMPT_PROGRESS=1 forces the bars on, 0 off (vlprompt.progress).
"""
import dataclasses
import os
import re
import sys
import time

LOG_FILE = "log.txt"
TAIL_BYTES = 16384
TRAIN_LINE = re.compile(r"epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\].*?\beta (\d+(?: days?, )?[\d:]+)")
TESTING = ("Finish training", "Evaluate on the *")


@dataclasses.dataclass
class RunProgress:
    phase: str                  # "starting", "training" or "testing"
    epoch: int = 0              # the epoch being trained (1-based) and the number of epochs
    epochs: int = 0
    batch: int = 0              # the last batch printed in that epoch, of `batches`
    batches: int = 0
    eta: str = None             # the whole run's time left, as the train line says it (H:MM:SS)

    @property
    def fraction(self):
        """Of the training done (1.0 once testing)."""
        if self.phase == "testing":
            return 1.0
        if not self.epochs or not self.batches:
            return 0.0
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)

    def describe(self):
        if self.phase == "training":
            return f"epoch {self.epoch}/{self.epochs} batch {self.batch}/{self.batches} eta {self.eta}"
        return self.phase


def read_progress(output_dir, since=None):
    """The RunProgress of the run writing into `output_dir` (from the tail of its log.txt), or None when it has
    no log yet (or, with `since`, only one older than that time: an earlier attempt's)."""
    path = os.path.join(output_dir, LOG_FILE)
    try:
        with open(path, "rb") as f:
            if since is not None and os.fstat(f.fileno()).st_mtime < since:
                return None
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return parse_progress(tail)


def parse_progress(text):
    """The RunProgress that a log's text ends in."""
    last = None
    testing = False
    for line in text.splitlines():
        m = TRAIN_LINE.search(line)
        if m:
            last, testing = m, False
        elif any(mark in line for mark in TESTING):
            testing = True
    if testing:
        return RunProgress("testing")
    if last is None:
        return RunProgress("starting")
    epoch, epochs, batch, batches = (int(x) for x in last.groups()[:4])
    return RunProgress("training", epoch, epochs, batch, batches, last.group(5))


# ------------------------------------------------------------------------------------------ display
@dataclasses.dataclass
class Active:
    """A run in progress as a display shows it: its label (a slot, a job), name and output directory."""
    label: str
    name: str
    output_dir: str
    since: float = None         # when it started, where known (older logs are an earlier attempt's)


class ProgressDisplay:
    """Live progress of a protocol (module docstring). update() as often as convenient; it draws the bars
    at most every `refresh_s` seconds, and prints the status line (no terminal) every `every_s` seconds."""

    def __init__(self, total, stream=None, terminal=None, every_s=60.0, refresh_s=1.0, clock=time.monotonic):
        from ..progress import progress_enabled

        self.total, self.stream = total, stream or sys.stderr
        self.terminal = progress_enabled(self.stream) if terminal is None else terminal
        self.every_s, self.refresh_s, self.clock = every_s, refresh_s, clock
        self._last_line = self._last_draw = None
        self._bars = {}         # label -> tqdm bar
        self._summary = None

    # Lines a launcher prints (a run done, a failure) go above the bars.
    def write(self, line):
        if self.terminal and (self._bars or self._summary is not None):
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def update(self, counts, active, force=False):
        """counts: {state: number of runs}; active: the runs in progress (Active)."""
        now = self.clock()
        if self.terminal:
            if force or self._last_draw is None or now - self._last_draw >= self.refresh_s:
                self._last_draw = now
                self._draw(counts, active)
        elif force or self._last_line is None or now - self._last_line >= self.every_s:
            self._last_line = now
            print(status_line(counts, active, self.total), file=self.stream, flush=True)

    def _draw(self, counts, active):
        from tqdm import tqdm

        def bar(position):
            return tqdm(total=1000, position=position, file=self.stream, dynamic_ncols=True, leave=False,
                        bar_format="{desc} |{bar}|")

        finished = counts.get("done", 0) + counts.get("failed", 0)
        if self._summary is None:
            self._summary = bar(0)
        self._show(self._summary, f"protocol {finished}/{self.total} ({summary(counts) or 'starting'})",
                   finished / max(1, self.total))
        labels = [a.label for a in active]
        for label in list(self._bars):
            if label not in labels:
                self._bars.pop(label).close()
        for k, run in enumerate(active):
            if run.label not in self._bars:
                self._bars[run.label] = bar(k + 1)
            p = read_progress(run.output_dir, run.since) or RunProgress("starting")
            self._show(self._bars[run.label], f"{run.label} {run.name}: {p.describe()}", p.fraction)

    @staticmethod
    def _show(bar, text, fraction):
        bar.set_description_str(text, refresh=False)
        bar.n = int(round(1000 * fraction))
        bar.refresh()

    def close(self):
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        if self._summary is not None:
            self._summary.close()
            self._summary = None


def summary(counts):
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n)


def status_line(counts, active, total):
    """One line for a log: the time, the counts, and each running run with its progress."""
    finished = counts.get("done", 0) + counts.get("failed", 0)
    running = "; ".join(f"{a.name} ({(read_progress(a.output_dir, a.since) or RunProgress('starting')).describe()})"
                        for a in active)
    return (f"[{time.strftime('%H:%M:%S')}] {finished}/{total} finished ({summary(counts) or 'nothing yet'})"
            + (f"; running: {running}" if running else ""))
