"""The `vlprompt` command (also `python -m vlprompt`).

    vlprompt data list
    vlprompt data check --root $DATA [NAMES...] [--images skip|open|decode] [--json]
    vlprompt data download NAME [NAME...] --root $DATA [--mirror URL] [--keep-archives]
    vlprompt results {base2new,xd,dg,fewshot,zeroshot} OUTPUT [--trainer T] [--config CFG] [--shots K] [--paper NAME] [--out DIR]
    vlprompt run PROTOCOL METHOD [--datasets ...] [--seeds 1 2 3] [--shots ...] [--gpus auto] [--jobs-per-gpu N]
                 [--run-timeout T] [--launcher local|slurm [--wait] [Slurm options]] [--status] [--repo DIR]
                 [--output DIR] [--root DIR] [-- KEY VALUE ...]
    vlprompt export-checkpoint RUN_DIR --format original [--out DIR] [--epoch N] [--trainer NAME]

Commands are argparse sub-parsers: a new command group is a function `add_<group>_commands(subparsers)`
listed in COMMAND_GROUPS; each command sets `func(args) -> exit status`.
"""
import argparse
import json
import os
import sys

from vlprompt.errors import UserError, report_user_error


class CommandError(UserError):
    """A bad argument of a `vlprompt` command: one line, exit status 2."""


def _root(args):
    root = args.root or os.environ.get("DATA", "")
    if not root:
        raise CommandError("pass --root (the folder holding the datasets) or set $DATA")
    return root


def _opts(pairs):
    pairs = pairs or []
    if len(pairs) % 2:
        raise CommandError(f"--opts takes KEY VALUE pairs, got {pairs}")
    return dict(zip(pairs[0::2], pairs[1::2]))


def _known_names(names, allowed):
    for name in names:
        if name not in allowed:
            from vlprompt.engine.names import closest_names

            close = closest_names(name, allowed, n=1, cutoff=0.0)
            hint = f' Did you mean "{close[0]}"?' if close else ""
            raise CommandError(f"unknown dataset {name!r}.{hint} Known: {', '.join(allowed)}")


def cmd_data_list(args):
    from vlprompt.data.catalog import DATASETS

    print(f"{'name':<20} {'folder under $DATA':<22} {'classes':>7} {'base/new':>9}   published train / val / test")
    for info in DATASETS:
        sizes = " / ".join("-" if n is None else f"{n:,}" for n in info.sizes)
        base_new = "test only" if info.test_only else f"{info.base}/{info.new}"
        print(f"{info.name:<20} {info.folder + '/':<22} {info.classes:>7} {base_new:>9}   {sizes}")
    return 0


def _reader_names(names, repo):
    """Dataset config names (configs/datasets/<name>.yaml, as the scripts and `vlprompt run` take them:
    caltech101, imagenet_a, a CustomDataset config) become (reader name, the config's other DATASET keys, the
    config name), so that a config's DATASET.CUSTOM.DIR is checked as a run would read it; other names stay."""
    import yaml

    from vlprompt.data.catalog import CATALOG
    from vlprompt.plugins import CodebaseNotFound, find_codebase

    readers = []
    for name in names:
        if name not in CATALOG and "/" not in name:
            relative = os.path.join("configs", "datasets", f"{name}.yaml")
            try:
                with open(os.path.join(find_codebase(relative, repo), relative)) as f:
                    dataset = (yaml.safe_load(f) or {}).get("DATASET", {}) or {}
            except (CodebaseNotFound, OSError, AttributeError, yaml.YAMLError):
                dataset = {}
            if isinstance(dataset, dict) and dataset.get("NAME"):
                keys = {f"DATASET.{k}": v for k, v in _flat(dataset).items() if k not in ("NAME", "ROOT")}
                readers.append((dataset["NAME"], keys, name))
                continue
        readers.append(name)
    return readers


def _flat(node, prefix=""):
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def cmd_data_check(args):
    from vlprompt.data.catalog import CATALOG
    from vlprompt.data.check import check, reader_registry

    args.names = _reader_names(args.names, args.repo)
    if args.names:  # the standard names are known without importing the readers (and torch)
        names = [item[0] if isinstance(item, tuple) else item for item in args.names]
        known = list(CATALOG) if set(names) <= set(CATALOG) else reader_registry(args.repo).registered_names()
        _known_names(names, known)
    if args.json:
        lines = []
        reports, ok = check(_root(args), args.names, opts=_opts(args.opts), images=args.images, out=lines.append,
                            repo=args.repo)
        print(json.dumps({"ok": ok, "datasets": [r.as_dict() for r in reports]}, indent=2))
    else:
        _, ok = check(_root(args), args.names, opts=_opts(args.opts), images=args.images, repo=args.repo)
    return 0 if ok else 1


def cmd_data_download(args):
    from vlprompt.data.catalog import CATALOG
    from vlprompt.data.download import DownloadError, download, format_result

    names = list(CATALOG) if args.names == ["all"] else args.names
    _known_names(names, list(CATALOG))
    root = _root(args)
    status = 0
    for name in names:
        try:
            result = download(name, root, mirror=args.mirror, keep_archives=args.keep_archives)
        except DownloadError as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr)
            status = 1
            continue
        print(format_result(result))
        if not result.complete:
            status = status or 2
    if status != 1:
        print(f"\nNext: vlprompt data check --root {root} {' '.join(names)}")
    return status


def add_data_commands(subparsers):
    data = subparsers.add_parser("data", help="dataset preparation: list, check, download")
    sub = data.add_subparsers(dest="data_command", metavar="{list,check,download}")
    sub.required = True

    p = sub.add_parser("list", help="the standard datasets, their folders and published sizes")
    p.set_defaults(func=cmd_data_list)

    p = sub.add_parser("check", help="report, per dataset, what is present, what is missing, the counts against "
                       "the published ones and unreadable images (exit status 1 if a dataset is unusable)")
    p.add_argument("names", nargs="*", metavar="NAME", help="datasets to check (default: the 15 standard ones)")
    p.add_argument("--root", default="", help="the data root (default: $DATA)")
    p.add_argument("--images", choices=("skip", "open", "decode"), default="open",
                   help="open every image's header (default), fully decode it, or skip the image check")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--repo", default=None, metavar="DIR",
                   help="the codebase whose datasets/*.py readers to use (default: $VLPROMPT_REPO, else the current "
                        "directory)")
    p.add_argument("--opts", nargs="+", metavar="KEY VALUE",
                   help="config options for the readers, e.g. DATASET.CUSTOM.DIR my_data (put last)")
    p.set_defaults(func=cmd_data_check)

    p = sub.add_parser("download", help="download and unpack a dataset where its sources allow it, or print what "
                       "to fetch by hand (exit status 2 when something is left to do by hand)")
    p.add_argument("names", nargs="+", metavar="NAME", help="dataset names, or 'all'")
    p.add_argument("--root", default="", help="the data root (default: $DATA)")
    p.add_argument("--mirror", default=None, help="fetch every file as <mirror>/<file name> instead")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep the downloaded archives in <root>/.vlprompt-downloads")
    p.set_defaults(func=cmd_data_download)


def cmd_results(args):
    from vlprompt.paper_numbers import BASE2NEW
    from vlprompt.results import build

    if args.paper and args.paper not in BASE2NEW:
        raise CommandError(f"unknown --paper {args.paper!r}; choose one of {sorted(BASE2NEW)}")
    if not os.path.isdir(args.output):
        raise CommandError(f"no output directory {args.output}")
    tables = build(args.protocol, args.output, args.out, args.trainer, args.config, args.shots, args.paper)
    return 0 if tables else 1


def add_results_commands(subparsers):
    from vlprompt.results import KINDS

    p = subparsers.add_parser("results", help="tables built from the runs' result.json files, next to the papers' "
                              "numbers (Markdown, CSV and a figure as PNG, PDF and SVG)")
    p.add_argument("protocol", choices=KINDS,
                   help="base2new: base/new/HM per dataset; xd: cross-dataset and ImageNet-variant accuracy; "
                   "dg: MetaPrompt's leave-one-domain-out; fewshot: accuracy against shots (CoOp); zeroshot: "
                   "zero-shot CLIP per dataset")
    p.add_argument("output", help="the scripts' output root (e.g. output/)")
    p.add_argument("--trainer", default=None, help="only this method (default: a table per method and config)")
    p.add_argument("--config", default=None, help="only this config name")
    p.add_argument("--shots", type=int, default=None, help="only this number of shots")
    p.add_argument("--paper", default=None, help="the paper row to compare with (default: from the trainer)")
    p.add_argument("--out", default=None, help="where to write the tables (default: OUTPUT/tables)")
    p.set_defaults(func=cmd_results)


def cmd_run(args):
    from vlprompt.runner import plan_protocol, run_protocol, runner_log_dir, status

    data = args.root or os.environ.get("DATA", "")
    try:
        if args.status:
            stages = plan_protocol(args.protocol, args.method, args.output, data, args.datasets, args.seeds,
                                   args.shots, args.opts, repo=args.repo)
            counts = status(stages, launcher=args.launcher, output=args.output,
                            log_dir=runner_log_dir(args.output, args.protocol, args.method, args.opts))
            return 1 if counts.get("failed") or counts.get("other") else 0
        extra = {}
        if args.launcher == "slurm":
            from vlprompt.runner import _launcher_module

            slurm = _launcher_module("slurm")
            extra.update(slurm_options=slurm.options_from_args(args), wait=args.wait,
                         poll_s=slurm.poll_seconds(args.poll_interval))
        elif getattr(args, "wait", False):
            raise CommandError("--wait is for --launcher slurm (the local launcher always waits for its runs)")
        run_timeout = None
        if args.run_timeout is not None:
            if args.launcher != "local":
                raise CommandError("--run-timeout is for the local launcher (a Slurm job's limit is --time)")
            from vlprompt.launchers.durations import duration_seconds

            run_timeout = duration_seconds(args.run_timeout, "--run-timeout")
        if args.status_every <= 0:
            raise CommandError(f"--status-every {args.status_every}: give a positive number of seconds")
        failed = run_protocol(args.protocol, args.method, args.output, _root(args), args.datasets, args.seeds,
                              args.shots, args.gpus, args.jobs_per_gpu, args.opts, repo=args.repo,
                              launcher=args.launcher, run_timeout=run_timeout, status_every=args.status_every,
                              **extra)
    except ValueError as e:
        if isinstance(e, UserError):
            raise
        raise CommandError(str(e)) from None
    return 1 if failed else 0


def add_run_commands(subparsers):
    from vlprompt.protocols import METHODS, PROTOCOLS

    p = subparsers.add_parser("run", help="run a whole protocol (train and test runs of datasets x seeds) through a "
                              "launcher, resumably, then build its table",
                              usage="vlprompt run PROTOCOL METHOD [options] [-- KEY VALUE ...]")
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("method", choices=sorted(METHODS), help="the method (its scripts/ folder's name)")
    p.add_argument("--datasets", nargs="+", default=None,
                   help="dataset config names (default: the protocol's; dg: pacs vlcs office_home domainnet)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--shots", nargs="+", type=int, default=None,
                   help="shots (default: 16; dg: 5 per class per domain; fewshot: 1 2 4 8 16)")
    p.add_argument("--gpus", default="auto", help="'auto' (all visible), '0,1', or 'cpu'")
    p.add_argument("--jobs-per-gpu", type=int, default=1, help="runs at once on each GPU (local launcher)")
    p.add_argument("--run-timeout", default=None, metavar="DURATION",
                   help="stop and report a run that takes longer (local launcher; minutes, HH:MM:SS, or 45s/30m/4h)")
    p.add_argument("--status-every", type=float, default=60.0, metavar="SECONDS",
                   help="without a terminal, print a status line this often (default 60); on a terminal, each "
                   "running run has a progress bar")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: long-lived workers on this machine's GPUs (or CPU); slurm: job arrays (needs "
                   "vlprompt[slurm])")
    p.add_argument("--status", action="store_true",
                   help="list each run as done / running / failed (with its log) / pending, and run nothing")
    p.add_argument("--root", default="", help="the data root (default: $DATA)")
    p.add_argument("--output", default="output", help="output root (default: ./output)")
    p.add_argument("--repo", default=None, metavar="DIR",
                   help="the vlprompt checkout whose train.py and configs/ to use (default: $VLPROMPT_REPO, else "
                   "the current directory)")
    try:  # the Slurm launcher's own options, where its module is there (it imports neither torch nor submitit)
        from vlprompt.launchers import slurm
    except ImportError:
        pass
    else:
        slurm.add_arguments(p)
    p.set_defaults(func=cmd_run, opts=[])


def cmd_export_checkpoint(args):
    from vlprompt.original_checkpoints import ExportError, export_run, trainer_of_run

    run_dir = args.run_dir.rstrip("/") or "/"
    if not os.path.isdir(run_dir):
        print(f"error: no run directory {run_dir}", file=sys.stderr)
        return 2
    out = args.out or run_dir + "-original"
    try:
        method = args.trainer or trainer_of_run(run_dir)
        path = export_run(run_dir, method, out, args.epoch)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {path} ({method}, the original repository's layout): evaluate it there with "
          f"--eval-only --model-dir {out} --load-epoch {path.rsplit('-', 1)[-1]}")
    return 0


def add_export_commands(subparsers):
    p = subparsers.add_parser("export-checkpoint", help="write a run's checkpoint in the original repository's "
                              "layout, for its own --eval-only (MaPLe, IVLP, VPT)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run's output directory")
    p.add_argument("--format", choices=("original",), required=True,
                   help="original: the MaPLe repository's full-model keys and folder names")
    p.add_argument("--out", default=None, help="the model directory to write (default: RUN_DIR-original)")
    p.add_argument("--epoch", type=int, default=None, help="the epoch to export (default: the latest checkpoint)")
    p.add_argument("--trainer", default=None, help="the trainer (default: from RUN_DIR/result.json)")
    p.set_defaults(func=cmd_export_checkpoint)


COMMAND_GROUPS = [add_data_commands, add_results_commands, add_run_commands, add_export_commands]


def build_parser():
    from vlprompt.version import __version__

    parser = argparse.ArgumentParser(prog="vlprompt", description="vlprompt: prompt learning for CLIP")
    parser.add_argument("--version", action="version", version=f"vlprompt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMAND_GROUPS:
        add(subparsers)
    return parser


def parse_args(argv=None):
    """argparse, except that `vlprompt run ... -- KEY VALUE ...` hands everything after `--` to every run
    (so the run command's options may come before or after its positional arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        argv = ["run"] + _positionals_first(_attach_dash_values(argv[1:]))
    if argv[:1] == ["run"] and "--" in argv:
        cut = argv.index("--")
        args = build_parser().parse_args(argv[:cut])
        args.opts = argv[cut + 1:]
        if len(args.opts) % 2:
            raise CommandError(f"the options after -- must be KEY VALUE pairs; got {' '.join(args.opts)}")
        return args
    return build_parser().parse_args(argv)


def _positionals_first(argv):
    """`vlprompt run`'s PROTOCOL and METHOD moved in front of its options, so that options that take several
    values (--datasets, --seeds, --shots) may come before them too: the first protocol name and the first method
    name before `--` are the positionals (no dataset, seed or option value is either)."""
    from vlprompt.protocols import METHODS, PROTOCOLS

    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut:]
    found = []
    for names in (PROTOCOLS, METHODS):
        for i, token in enumerate(head):
            if token in names and not (i > 0 and head[i - 1] in _SINGLE_VALUE_OPTIONS):
                found.append(head.pop(i))
                break
    return found + head + tail


def _attach_dash_values(argv):
    """`--sbatch "--qos=normal"` as `--sbatch=--qos=normal`: argparse takes a value that starts with "-" for an
    option of its own ("expected one argument") unless it is attached. Only before `--`."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head, joined, i = argv[:cut], [], 0
    while i < len(head):
        if head[i] in _DASH_VALUE_OPTIONS and i + 1 < len(head):
            joined.append(f"{head[i]}={head[i + 1]}")
            i += 2
        else:
            joined.append(head[i])
            i += 1
    return joined + argv[cut:]


# `vlprompt run` options whose value may start with "-" (an sbatch option, a shell line)
_DASH_VALUE_OPTIONS = {"--sbatch", "--setup"}
# `vlprompt run` options that take exactly one value (a protocol or method name there is that value)
_SINGLE_VALUE_OPTIONS = {"--gpus", "--jobs-per-gpu", "--launcher", "--root", "--output", "--repo", "--run-timeout",
                         "--status-every", "--partition", "--time", "--gpus-per-job", "--cpus-per-job", "--mem",
                         "--account", "--array-parallelism", "--group", "--max-timeouts", "--poll-interval"}


def main(argv=None):
    try:
        args = parse_args(argv)
        return args.func(args)
    except UserError as e:  # one line, exit 2 (VLPROMPT_DEBUG=1 for the traceback)
        report_user_error(e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
