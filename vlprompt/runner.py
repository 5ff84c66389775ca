"""Run a whole protocol (vlprompt.protocols) through a launcher, report its status, end with the table.

    vlprompt run base2new maple                            # 11 datasets x seeds 1 2 3, then the table
    vlprompt run base2new cocoop --datasets caltech101 dtd --seeds 1 --gpus 0,1 --jobs-per-gpu 2
    vlprompt run xd maple                                  # ImageNet training, then the 10 other datasets
    vlprompt run dg metaprompt --datasets pacs --shots 5   # every held-out domain x seed
    vlprompt run base2new maple --seeds 1 2 -- TRAINER.MAPLE.PREC amp   # options after -- go to every run
    vlprompt run base2new maple --status                   # done / running / failed / pending, from the output tree

The `local` launcher (vlprompt.launchers.local) runs the plan on long-lived workers, JOBS_PER_GPU per GPU
(the CPU, one at a time, without one); `slurm` (vlprompt.launchers.slurm) submits it, and with `--wait`
follows the jobs until every stage has ended. Finished runs are skipped and interrupted ones resume (the run
identity decides), so running the command again retries what failed. Each run's console output goes to
OUTPUT/runner-logs/<protocol>-<method><variant>/<run>.log (Slurm: the run's log.txt); failures are listed at
the end (exit status 1) after the other runs have run. While it runs, each running run's progress is shown
(vlprompt.launchers.progress): bars on a terminal, else a status line every `status_every` seconds.

`--status` and planning import neither torch nor CLIP.
"""
import importlib
import os

from .protocols import METHODS, all_runs, plan, variant_suffix

# the table each protocol's results go to (vlprompt.results)
TABLES = {"base2new": "base2new", "xd": "xd", "imagenet_dg": "xd", "dg": "dg", "fewshot": "fewshot",
          "zeroshot": "zeroshot"}
LAUNCHERS = ("local", "slurm")


def gpu_slots(gpus, jobs_per_gpu):
    """CUDA_VISIBLE_DEVICES values, one per concurrent job ("" = the CPU)."""
    if gpus in (None, "auto"):
        try:
            import torch

            ids = [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        except Exception:
            ids = []
    elif gpus in ("none", "cpu"):
        ids = []
    else:
        ids = [g.strip() for g in str(gpus).split(",") if g.strip()]
    if not ids:
        return [""]
    return [gpu for gpu in ids for _ in range(max(1, jobs_per_gpu))]


def plan_protocol(protocol, method, output, data, datasets=None, seeds=(1, 2, 3), shots=None, opts=(), repo=None,
                  variant=None):
    """The protocol's stages; variant None takes $VARIANT when it is set, as the scripts do."""
    if variant is None:
        variant = os.environ.get("VARIANT")
    return plan(protocol, method, data, output, datasets=datasets, seeds=seeds, shots=shots, opts=opts,
                variant=variant, repo=repo)


def status(stages, launcher="local", output=None, out=print, log_dir=None):
    """Print each run's state (done / running / failed with its log / pending); returns {state: count}.
    log_dir: the local launcher's run logs (a run with a log there was started)."""
    from .launchers.base import STATES, run_state
    from .launchers.local import run_log

    if launcher == "slurm" and output is not None:  # also the job ids and what squeue says about them
        states = list(_launcher_module(launcher).status(stages, output).values())
    else:
        states = [run_state(run, run_log(log_dir, run) if log_dir else None) for run in all_runs(stages)]
    counts = {state: 0 for state in STATES}
    for state in states:
        counts[state.state] += 1
        out("  " + state.describe())
    out(", ".join(f"{n} {state}" for state, n in counts.items()) + f" (of {len(states)} runs)")
    return counts


def runner_log_dir(output, protocol, method, opts=(), variant=None):
    """Where the local launcher writes each run's console output (<run name>.log): one folder per protocol,
    method and variant (its folder suffix, as the runs' own folders), so two variants never share logs."""
    if variant is None:
        variant = os.environ.get("VARIANT")
    return os.path.join(output, "runner-logs", f"{protocol}-{method}{variant_suffix(opts, variant)}")


def _launcher_module(name):
    if name not in LAUNCHERS:
        raise ValueError(f"unknown launcher {name!r}; choose one of {', '.join(LAUNCHERS)}")
    try:
        return importlib.import_module(f"vlprompt.launchers.{name}")
    except ImportError as e:
        raise ValueError(f"the {name} launcher is not available ({e})") from None


def run_protocol(protocol, method, output, data, datasets=None, seeds=(1, 2, 3), shots=None, gpus="auto",
                 jobs_per_gpu=1, opts=(), out=print, repo=None, launcher="local", variant=None, run_timeout=None,
                 status_every=60.0, progress=None, wait=False, poll_s=30.0, slurm_options=None):
    """Run the protocol's stages through the launcher, then print and write its table. Returns the names of
    the failed runs. Local launcher: run_timeout (seconds a run may take). Slurm: slurm_options
    (SlurmOptions); wait: follow the jobs (asking the scheduler every poll_s seconds) until every stage has
    ended, then the table; without it, submit and return. progress: a ProgressDisplay (default: bars on a
    terminal, else a line every status_every seconds on stderr)."""
    from .launchers.progress import ProgressDisplay

    stages = plan_protocol(protocol, method, output, data, datasets, seeds, shots, opts, repo, variant)
    runs = all_runs(stages)
    log_dir = runner_log_dir(output, protocol, method, opts, variant)
    module = _launcher_module(launcher)
    if progress is None:
        progress = ProgressDisplay(len(runs), every_s=status_every)
    say = progress.write if progress.terminal else out
    if launcher == "local":
        slots = gpu_slots(gpus, jobs_per_gpu)
        where = f"GPUs {sorted(set(slots))} x {jobs_per_gpu}" if slots != [""] else "the CPU, one run at a time"
        out(f"{protocol} / {method}: {len(runs)} runs in {len(stages)} stages on {where}; logs in {log_dir}")
        failures = module.launch(stages, slots=slots, log_dir=log_dir, repo=repo, out=say, run_timeout=run_timeout,
                                 display=progress)
    else:
        out(f"{protocol} / {method}: {len(runs)} runs in {len(stages)} stages through {launcher}")
        submission = module.submit(stages, output, slurm_options, repo=repo)
        out(submission.describe())
        if not wait:  # the table comes from `vlprompt results` (or this command with --wait) when the jobs end
            out("Follow it with the same command and --status (or --wait); run it again to resubmit what failed.")
            return []
        out(f"Waiting for the jobs (asking the scheduler every {poll_s:g} s) ...")
        try:
            finished = [name for name, why in submission.skipped.items() if why == "done"]
            states = module.follow(stages, output, poll_s=poll_s, display=progress, out=say, quiet=finished)
        finally:
            progress.close()
        from .launchers.local import Failure

        failures = [Failure(s.name, s.log, f"job {s.job}: {s.scheduler}" if s.scheduler else "failed")
                    for s in states.values() if s.state == "failed"]
        unfinished = [s.name for s in states.values() if s.state in ("pending", "other")]
        if unfinished:
            names = ", ".join(unfinished[:5]) + (" ..." if len(unfinished) > 5 else "")
            out(f"{len(unfinished)} runs were not run ({names}): see --status, and run the command again to submit "
                "them.")
    if protocol in TABLES:
        from .results import build

        build(TABLES[protocol], output, trainer=METHODS[method][0], out=out)
    else:
        out(f"(no table for the {protocol} protocol yet: each run's result.json is in its output directory)")
    if failures:
        out(f"{len(failures)} runs failed:")
        for f in failures:
            out(f"  {f.name}: {f.message} (log: {f.log})")
        out("Run the same command again to retry them (finished runs are skipped).")
    return [f.name for f in failures]
