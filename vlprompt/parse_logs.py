"""Reading results out of Dassl-style logs (ours and the original repositories'), as parse_test_res.py does.

A run directory holds `log.txt`, and after re-runs older logs: Dassl names a re-run's log
`log.txt-<time>`; vlprompt renames the previous `log.txt` to `log.txt-<its time>`. Either way the
newest file (by modification time) is the latest run, and that is the one read.

A metric is read after the end signal: "Finish training" (Dassl >= 0.6.1) or "Finished training"
(older Dassl, which MaPLe's copy of the parser expects), or "=> result" for test-only logs. The last
match wins; 1- and 2-decimal numbers are both read.
"""
import glob
import math
import os
import re
from collections import OrderedDict

import numpy as np

TRAIN_END_SIGNALS = ("Finish training", "Finished training")
TEST_END_SIGNALS = ("=> result",)


def run_logs(run_dir):
    """The run's log files, newest first."""
    logs = [p for p in glob.glob(os.path.join(run_dir, "log.txt*")) if os.path.isfile(p)]
    return sorted(logs, key=lambda p: (os.path.getmtime(p), p), reverse=True)


def parse_log(path, keyword="accuracy", test_log=False):
    """The last `* <keyword>: X%` after the end signal in a log, or None."""
    signals = TEST_END_SIGNALS if test_log else TRAIN_END_SIGNALS
    regex = re.compile(fr"\* {re.escape(keyword)}: ([\.\deE+-]+)%")
    value, armed = None, False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line in signals:
                armed = True
            match = regex.search(line)
            if match and armed:
                value = float(match.group(1))
    return value


def compute_ci95(values):
    return 1.96 * np.std(values) / np.sqrt(len(values))


def parse_directory(directory, keyword="accuracy", test_log=False, ci95=False, out=print):
    """Parse every run (sub)directory of `directory`; print per-file lines and the summary.

    Returns {keyword: mean}. Runs without a result are named in a warning (and left out of the mean);
    if no run has a result, ValueError names the files that were read.
    """
    out(f"Parsing files in {directory}")
    if not os.path.isdir(directory):
        raise ValueError(f"Not a directory: {directory}")
    subdirs = sorted(d for d in os.listdir(directory) if not d.startswith(".") and os.path.isdir(os.path.join(directory, d)))
    run_dirs = [os.path.join(directory, d) for d in subdirs]
    if not run_dirs and run_logs(directory):
        run_dirs = [directory]  # a single run directory was given
    values, problems = [], []
    signal = "'=> result'" if test_log else "'Finish training'"
    for run_dir in run_dirs:
        logs = run_logs(run_dir)
        if not logs:
            problems.append(f"{run_dir}: no log.txt")
            continue
        value = parse_log(logs[0], keyword, test_log)
        if value is None:
            older = [p for p in logs[1:] if parse_log(p, keyword, test_log) is not None]
            note = f" (an older log, {os.path.basename(older[0])}, has one: the latest run did not finish)" if older else ""
            hint = "" if test_log else "; for eval-only runs use --test-log"
            problems.append(f"{logs[0]}: no '* {keyword}: X%' after {signal}{note}{hint}")
            continue
        values.append(value)
        out(f"file: {logs[0]}. {keyword}: {value:.2f}%. ")
    if not values:
        raise ValueError(f"Nothing found in {directory}:\n  " + "\n  ".join(problems or ["no run directories"]))
    for problem in problems:
        out(f"WARNING: {problem}")
    mean = float(np.mean(values))
    spread = compute_ci95(values) if ci95 else float(np.std(values))
    out("===")
    out(f"Summary of directory: {directory}")
    out(f"* {keyword}: {mean:.2f}% +- {spread:.2f}%")
    if problems:
        out(f"* WARNING: {len(problems)} of {len(problems) + len(values)} runs have no result (listed above); "
            f"the mean is over {len(values)}")
    out("===")
    return OrderedDict([(keyword, mean)])


def parse_multi_exp(directory, keyword="accuracy", test_log=False, ci95=False, out=print):
    """Each subdirectory is an experiment of seed directories; prints the mean of the experiment means."""
    means = []
    for name in sorted(d for d in os.listdir(directory) if not d.startswith(".")):
        means.append(parse_directory(os.path.join(directory, name), keyword, test_log, ci95, out)[keyword])
        out("")
    out("Average performance")
    average = float(np.mean(means)) if means else math.nan
    out(f"* {keyword}: {average:.2f}%")
    return average
