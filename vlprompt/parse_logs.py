"""Reading results out of Dassl-style logs (ours and the original repositories'), as parse_test_res.py does.

A run directory holds `log.txt`, and after re-runs older logs: Dassl writes a re-run's log to
`log.txt-<time>` (its `log.txt` is the first run's); vlprompt renames the previous `log.txt` to
`log.txt-<its time>` and starts each log with a "** vlprompt log started <time>" line. The latest
run's log is found from what survives a copy of the tree: the start line inside a log, else the time in
its name, else (a plain `log.txt` without the line, Dassl's) the oldest. File modification times are
not used: a plain copy of the tree gives every file the same one.

A metric is read after the end signal: "Finish training" (Dassl >= 0.6.1) or "Finished training"
(older Dassl, which MaPLe's copy of the parser expects), or "=> result" for test-only logs. The last
match wins; 1- and 2-decimal numbers are both read.

Runs are averaged only if they are one setting: where the run directories record their identity (vlprompt
writes identity.json), runs of different settings (another MAX_EPOCH, PREC, CLIP file, shot count...) are
refused with the keys that differ; a mix of identified and unidentified runs is refused too. Logs of the
original code (no identity) are averaged as the original parser does.
"""
import glob
import math
import os
import re
from collections import OrderedDict

import numpy as np

from .errors import UserError
from .run_identity import DATA_KEYS, differences, read_identity, trained_model, upgrade, variant_fingerprint

TRAIN_END_SIGNALS = ("Finish training", "Finished training")
TEST_END_SIGNALS = ("=> result",)


_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})")
START_MARK = "** vlprompt log started"


def _log_time(path):
    """When the run of this log started ('' = unknown: older than any dated log)."""
    with open(path, errors="replace") as f:
        first = f.readline()
    if first.startswith(START_MARK):
        match = _STAMP.search(first)
        if match:
            return match.group(1)
    match = _STAMP.search(os.path.basename(path))
    return match.group(1) if match else ""


def run_logs(run_dir):
    """The run's log files, newest first (see the module's docstring for how "newest" is decided)."""
    logs = [p for p in glob.glob(os.path.join(glob.escape(run_dir), "log.txt*")) if os.path.isfile(p)]
    # Same time: the current log.txt of vlprompt wins over a rotated one; then the name, for a fixed order.
    return sorted(logs, key=lambda p: (_log_time(p), os.path.basename(p) == "log.txt", p), reverse=True)


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


class ParseError(UserError, ValueError):
    pass


def _setting(identity):
    """What runs that may be averaged share: the variant (everything but the seed and the data; for an
    evaluation, the model it loads) and the shots the model was trained with."""
    trained = trained_model(identity) if identity.get("kind") == "eval" else None
    shots = trained.get("shots", identity.get("shots")) if trained else identity.get("shots")
    return variant_fingerprint(identity), shots


def check_one_setting(run_dirs, where):
    """Refuse to average runs of different settings (module docstring); the identities found."""
    identities = {d: read_identity(d) for d in run_dirs}
    known = {d: upgrade(i) for d, i in identities.items() if i}
    unknown = [d for d, i in identities.items() if not i]
    names = lambda dirs: ", ".join(os.path.basename(d.rstrip("/")) or d for d in dirs)  # noqa: E731
    if known and unknown:
        raise ParseError(f"under {where}, {names(known)} record their run identity and {names(unknown)} do not (another "
                         "codebase's run?): they cannot be told to be one setting, so they are not averaged. Move "
                         "the unidentified runs away, or parse them separately")
    settings = {}
    for d, identity in known.items():
        settings.setdefault(_setting(identity), []).append(d)
    if len(settings) > 1:
        (first_key, first_dirs), *others = settings.items()
        reference = known[first_dirs[0]]
        parts = []
        for key, dirs in others:
            diff = differences(reference, known[dirs[0]], ignore=DATA_KEYS)
            diff = [d for d in diff if not d.startswith(("evaluated model", "kind of run"))]
            if key[1] != first_key[1]:
                diff.insert(0, f"shots: {first_key[1]} -> {key[1]}")
            parts.append(f"{names(dirs)}: " + ("; ".join(diff) or "other settings"))
        raise ParseError(f"the runs under {where} are {len(settings)} different settings, so their mean would mix "
                         f"them. Against {names(first_dirs)}: " + " | ".join(parts) + ". Parse each setting's "
                         "folders on their own (`vlprompt results` groups them for you)")
    return known


def compute_ci95(values):
    return 1.96 * np.std(values) / np.sqrt(len(values))


def parse_directory(directory, keyword="accuracy", test_log=False, ci95=False, out=print):
    """Parse every run (sub)directory of `directory`; print per-file lines and the summary.

    Returns {keyword: mean}. Runs without a result are named in a warning (and left out of the mean);
    if no run has a result, ValueError names the files that were read.
    """
    out(f"Parsing files in {directory}")
    if not os.path.isdir(directory):
        raise ParseError(f"Not a directory: {directory}")
    subdirs = sorted(d for d in os.listdir(directory) if not d.startswith(".") and os.path.isdir(os.path.join(directory, d)))
    run_dirs = [os.path.join(directory, d) for d in subdirs]
    if not run_dirs and run_logs(directory):
        run_dirs = [directory]  # a single run directory was given
    check_one_setting(run_dirs, directory)
    values, problems = [], []
    seeds = sorted(int(d[4:]) for d in subdirs if re.fullmatch(r"seed\d+", d))
    if seeds:
        missing = sorted(set(range(1, max(seeds) + 1)) - set(seeds))
        problems += [f"{os.path.join(directory, f'seed{n}')}: no such seed folder" for n in missing]
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
        raise ParseError(f"Nothing found in {directory}:\n  " + "\n  ".join(problems or ["no run directories"]))
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
    if not os.path.isdir(directory):
        raise ParseError(f"Not a directory: {directory}")
    experiments = sorted(d for d in os.listdir(directory) if not d.startswith("."))
    # one setting across the experiments too (their data differ, the model and how it is tested must not)
    check_one_setting([os.path.join(directory, name, seed) for name in experiments
                       if os.path.isdir(os.path.join(directory, name))
                       for seed in sorted(os.listdir(os.path.join(directory, name)))
                       if os.path.isdir(os.path.join(directory, name, seed))], directory)
    means = []
    for name in experiments:
        means.append(parse_directory(os.path.join(directory, name), keyword, test_log, ci95, out)[keyword])
        out("")
    out("Average performance")
    average = float(np.mean(means)) if means else math.nan
    out(f"* {keyword}: {average:.2f}%")
    return average


def main(argv=None):
    """parse_test_res.py's command line (CoOp's and MaPLe's): mean and std of a metric over seed folders."""
    import argparse

    from .errors import EXIT_USER_ERROR, report_user_error

    parser = argparse.ArgumentParser(description="Mean and std of a metric over the seed directories of an experiment, "
                                                 "read from the logs")
    parser.add_argument("directory", type=str, help="path to directory")
    parser.add_argument("--ci95", action="store_true", help="compute 95%% confidence interval")
    parser.add_argument("--test-log", action="store_true", help="parse test-only logs")
    parser.add_argument("--multi-exp", action="store_true", help="parse multiple experiments")
    parser.add_argument("--keyword", default="accuracy", type=str, help="which keyword to extract")
    args = parser.parse_args(argv)
    try:
        if args.multi_exp:
            parse_multi_exp(args.directory, args.keyword, args.test_log, args.ci95)
        else:
            parse_directory(args.directory, args.keyword, args.test_log, args.ci95)
    except UserError as e:
        report_user_error(e)
        return EXIT_USER_ERROR
    return 0
