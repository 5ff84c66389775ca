"""What the bash scripts in scripts/ run: each is one line that calls

    "$PYTHON" -m vlprompt.script_jobs --script "$0" --repo REPO JOB METHOD [ARGS...] [KEY VALUE ...]

(scripts/_protocols.sh's script_job), which checks the script's arguments, builds its runs with
vlprompt.protocols.Planner (the one definition of every protocol, also used by `vlprompt run` and the
launchers) and runs train.py in this process: one run per script for the per-run scripts, several (one
after another, each failure reported and the others still run) for the per-protocol ones.

The scripts' conventions, from the environment (scripts/_protocols.sh lists them):
    DATA (required), OUTPUT (default REPO/output), TRAINER, CFG, SHOTS, LOADEP, VARIANT, SOURCE_DATASET,
    SEEDS (default "1 2 3" for the scripts that run every seed), DRY_RUN=1 (print the train.py command
    lines, run nothing).

A job whose test needs a trained model finds the epoch that model saved before anything runs. Bad
arguments are one line on stderr and exit status 2.
"""
import argparse
import os
import shlex
import sys

from .errors import EXIT_USER_ERROR, UserError, report_user_error
from .protocols import (DEPT_RUNNERS, DG_CONFIG, FEWSHOT_CONFIGS, METHODS, Planner, ProtocolError, dg_domains,
                        fewshot_options, released_epoch, resolve_spec)


class UsageError(UserError):
    pass


# What a script's refusal of an output directory holding another run names as the ways out.
WAY_OUT = ("Set VARIANT=<name> to give this run a directory of its own (VARIANT= unset names it from the KEY VALUE "
           "options), or OUTPUT=<another folder>")


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _method(method, field):
    """The scripts' TRAINER/CFG defaults: METHODS[method] (field 1: base-to-new config, 2: cross-dataset)."""
    trainer, b2n_cfg, xd_cfg = METHODS[method]
    return _env("TRAINER", trainer), _env("CFG", (None, b2n_cfg, xd_cfg)[field])


def _integer(value, what):
    """value, checked to be an integer (train.py's --seed), so a bad seed stops the job before any run."""
    try:
        int(value)
    except ValueError:
        raise ProtocolError(f"{what}: {value!r} is not a seed (an integer)") from None
    return value


def _shots(default):
    """$SHOTS (default `default`), checked to be a shot count, so that a bad one stops the job before any run."""
    text = _env("SHOTS", default)
    if not text.lstrip("-").isdigit() or not (int(text) >= 1 or int(text) == -1):
        raise ProtocolError(f"SHOTS={text!r} is not a shot count: expected an integer K >= 1 (images per class), or -1 "
                            "for all images")
    return text


def _seeds():
    text = _env("SEEDS", "1 2 3")
    return [_integer(seed, f"SEEDS={text!r}") for seed in text.split()]


def _data():
    data = os.environ.get("DATA", "")
    if not data:
        raise ProtocolError("set DATA to the folder that holds the datasets (export DATA=/path/to/datasets)")
    if not os.path.isdir(data):
        raise ProtocolError(f"DATA={data} is not a directory")
    return data


def _planner(repo, opts):
    variant = os.environ.get("VARIANT")  # unset: named from the options; set and empty: the plain tree
    output = _env("OUTPUT", os.path.join(repo, "output"))
    return Planner(repo, _data(), output, opts, variant)


def _weights(path):
    if not os.path.isdir(path):
        raise ProtocolError(f"no folder {path}")
    return os.path.abspath(path)


# Each job: (the script's positional arguments, what its usage line adds, a function (planner, method, *args)
# -> the runs). The functions read the scripts' environment variables.
def _runner(method):
    """DePT's runner config name for DePT's methods (their runs use its output tree), else None."""
    return method if method in DEPT_RUNNERS else None


def _base2new_train(p, method, dataset, seed):
    trainer, cfg = _method(method, 1)
    return [p.base2new_train(trainer, cfg, dataset, seed, _shots("16"), _runner(method))]


def _base2new_test(p, method, dataset, seed):
    trainer, cfg = _method(method, 1)
    return [p.base2new_test(trainer, cfg, dataset, seed, _shots("16"), _env("LOADEP"), _runner(method))]


def _xd_train(p, method, dataset, seed):
    trainer, cfg = _method(method, 2)
    return [p.xd_train(trainer, cfg, dataset, seed, _shots("16"), _runner(method))]


def _xd_train_source(p, method, seed):
    return _xd_train(p, method, _env("SOURCE_DATASET", "imagenet"), seed)


def _xd_test(p, method, dataset, seed):
    trainer, cfg = _method(method, 2)
    return [p.xd_test(trainer, cfg, dataset, seed, _shots("16"), _env("LOADEP"),
                      _env("SOURCE_DATASET", "imagenet"), _runner(method))]


def _reproduce_base2new(p, method, dataset, seed, weights):
    trainer, cfg = _method(method, 1)
    model_dir = os.path.join(_weights(weights), "base", f"seed{seed}")
    if not os.path.isdir(model_dir):
        raise ProtocolError(f"no {model_dir}: WEIGHTSPATH must be the unzipped folder of one dataset, holding "
                            "base/seed1 base/seed2 base/seed3")
    epoch = _env("LOADEP") or released_epoch(model_dir)
    return p.released_base2new(trainer, cfg, dataset, seed, model_dir, epoch, _shots("16"))


def _reproduce_xd(p, method, dataset, seed, weights):
    trainer, cfg = _method(method, 2)
    model_dir = os.path.join(_weights(weights), f"seed{seed}")
    if not os.path.isdir(model_dir):
        raise ProtocolError(f"no {model_dir}: WEIGHTSPATH must be the unzipped ImageNet folder, holding seed1 seed2 "
                            "seed3")
    epoch = _env("LOADEP") or released_epoch(model_dir)
    return [p.released_xd(trainer, cfg, dataset, seed, model_dir, epoch, _shots("16"))]


def _dg_train(p, method, dataset, target, seed, shots):
    return [p.dg_train(_env("TRAINER", METHODS[method][0]), _env("CFG", DG_CONFIG), dataset, target, seed, shots)]


def _dg_all(p, method, dataset, shots):
    return [run for target in dg_domains(dataset) for seed in _seeds()
            for run in _dg_train(p, method, dataset, target, seed, shots)]


def _few_shot(p, method, dataset, shots):
    trainer, cfg = _method(method, 2)
    if method in FEWSHOT_CONFIGS:
        cfg = _env("CFG", FEWSHOT_CONFIGS[method])
    return [p.xd_train(trainer, cfg, dataset, seed, shots, extra=fewshot_options(method, dataset, cfg))
            for seed in _seeds()]


def _reproduce_few_shot(p, method, dataset, shots, weights):
    trainer = _env("TRAINER", METHODS[method][0])
    cfg = _env("CFG", FEWSHOT_CONFIGS.get(method))
    runs = []
    for seed in _seeds():
        model_dir = os.path.join(_weights(weights), f"{shots}shot", f"seed{seed}")
        if not os.path.isdir(model_dir):
            raise ProtocolError(f"no {model_dir}: WEIGHTSPATH must be the unzipped folder of one dataset, holding "
                                f"{shots}shot/seed1 {shots}shot/seed2 {shots}shot/seed3")
        runs.append(p.released_fewshot(trainer, cfg, dataset, seed, shots, model_dir,
                                       _env("LOADEP") or released_epoch(model_dir)))
    return runs


def _coop_main(p, method, dataset, cfg, ctp, nctx, shots, csc):
    return [p.coop_train(dataset, cfg, seed, shots, ctp, nctx, csc, METHODS[method][0]) for seed in _seeds()]


def _coop_eval(p, method, dataset, cfg):
    return [p.coop_test(dataset, cfg, seed, _env("LOADEP"), "end", 16, "False", _shots("16")) for seed in _seeds()]


def _zeroshot(p, method, dataset, cfg):
    return [p.zeroshot(_env("TRAINER", METHODS[method][0]), cfg, dataset)]


JOBS = {
    "base2new_train": (["DATASET", "SEED"], "", _base2new_train),
    "base2new_test": (["DATASET", "SEED"], "", _base2new_test),
    "xd_train": (["DATASET", "SEED"], "   (e.g. imagenet 1)", _xd_train),
    "xd_train_source": (["SEED"], "", _xd_train_source),  # the source is $SOURCE_DATASET, else imagenet
    "xd_test": (["DATASET", "SEED"], "", _xd_test),
    "reproduce_base2new": (["DATASET", "SEED", "WEIGHTSPATH"], "", _reproduce_base2new),
    "reproduce_xd": (["DATASET", "SEED", "WEIGHTSPATH"], "", _reproduce_xd),
    "dg_train": (["DATASET", "TARGET_DOMAIN", "SEED", "SHOTS"], "", _dg_train),
    "dg_all": (["DATASET", "SHOTS"], "", _dg_all),
    "few_shot": (["DATASET", "SHOTS"], "", _few_shot),
    "reproduce_few_shot": (["DATASET", "SHOTS", "WEIGHTSPATH"], "", _reproduce_few_shot),
    "coop_main": (["DATASET", "CFG", "CTP", "NCTX", "SHOTS", "CSC"], "", _coop_main),
    "coop_eval": (["DATASET", "CFG"], "", _coop_eval),
    "zeroshot": (["DATASET", "CFG"], "", _zeroshot),
}


def _is_int(text, low):
    return text.lstrip("-").isdigit() and int(text) >= low


# A script's positional arguments that are checked before anything runs: name -> (test, what is allowed)
POSITIONAL_CHECKS = {
    "SEED": (lambda v: _is_int(v, -1), "a seed (an integer >= 0)"),
    "SHOTS": (lambda v: _is_int(v, 1) or v == "-1", "a shot count (an integer >= 1, or -1 for all images)"),
    "NCTX": (lambda v: _is_int(v, 1), "a number of context tokens (an integer >= 1)"),
    "CSC": (lambda v: v in ("True", "False"), "True or False (class-specific context)"),
    "CTP": (lambda v: v in ("end", "middle", "front"), "end, middle or front (the class token's position)"),
}


def plan_job(job, method, args, repo, script="script"):
    """The runs of `script`'s job for its arguments (positional, then KEY VALUE options) and the
    planner that built them."""
    names, hint, build = JOBS[job]
    if len(args) < len(names):
        raise UsageError(f"usage: bash {script} {' '.join(names)} [KEY VALUE ...]{hint}")
    positional, opts = args[:len(names)], args[len(names):]
    for name, value in zip(names, positional):
        check = POSITIONAL_CHECKS.get(name)
        if check is not None and not check[0](value):
            raise ProtocolError(f"{name} {value!r} is not allowed: expected {check[1]}")
    planner = _planner(repo, opts)
    return build(planner, method, *positional), planner


def _announce(run):
    """The line reproduce*.sh prints before each evaluation of released weights."""
    return f"Evaluating {run.spec.model_dir} (epoch {run.spec.load_epoch}); results go to {run.output_dir}"


def execute(runs, planner, dry_run=False, announce=False, out=print):
    """Run `runs` one after another in this process through the library's entry point (or print their
    train.py command lines); returns the exit status: a single run's own; for several, 0, or 2 when some
    failed (each is reported and the others still run, as the bash loops did)."""
    from .entry import execute as execute_run
    from .errors import run_main

    specs = [resolve_spec(run.spec, planner.suffix) for run in runs]  # every test's model, before any run
    train_py = os.path.join(planner.repo, "train.py")
    if dry_run:
        for run, spec in zip(runs, specs):
            if announce:
                out(_announce(run))
            out(shlex.join([sys.executable, train_py, *spec.argv()]))
        return 0

    def one(spec):
        return execute_run(spec, codebase=planner.repo, way_out=WAY_OUT)

    if len(runs) == 1:
        if announce:
            out(_announce(runs[0]))
        return run_main(lambda _: one(specs[0]))
    from .data import index_reuse
    from .launchers.base import ProcessState, run_isolated

    index_reuse.enable()  # the runs share dataset indexes (vlprompt.data.index_reuse)
    state, failed = ProcessState(), []
    for run, spec in zip(runs, specs):
        if announce:
            out(_announce(run))
        if run_isolated(lambda: one(spec), state) is not None:
            failed.append(run)
    if failed:
        names = " ".join(os.path.relpath(run.output_dir, planner.output) for run in failed)
        report_user_error(ProtocolError(f"runs failed: {names} (their logs: log.txt in each; re-run this command "
                                        "to resume them)"))
        return EXIT_USER_ERROR
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vlprompt.script_jobs",
                                     description="Run the job of a script in scripts/ (the scripts call this).")
    parser.add_argument("--script", default="script", help="the calling script's path ($0), for its usage line")
    parser.add_argument("--repo", default=None, help="vlprompt's codebase (train.py, configs/)")
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    try:
        runs, planner = plan_job(ns.job, ns.method, ns.args, ns.repo, ns.script)
        return execute(runs, planner, dry_run=_env("DRY_RUN", "0") not in ("0", "false", "False"),
                       announce=ns.job.startswith("reproduce"))
    except UsageError as e:
        sys.stderr.write(f"{e}\n")
        return EXIT_USER_ERROR
    except UserError as e:
        report_user_error(e)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
