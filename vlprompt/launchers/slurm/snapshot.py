"""`--freeze-code`: the jobs run from a copy of the codebase made at submission (as submitit's snapshots), so
editing the checkout while jobs wait in the queue does not change what they run.

    <output>/slurm/snapshots/<time>-<commit>/codebase/   the copy: train.py, trainers/, datasets/, configs/, vlprompt/
    <output>/slurm/snapshots/<time>-<commit>/lib/        the jobs' working directory: vlprompt only (a link into
                                                         codebase/, where the library comes from the checkout)

A git checkout is copied as a clone of its HEAD commit with the checkout's changes on top (the edited and
staged files, and the new files of its code folders), so that each run still records the commit it ran and
whether the code differed from it (identity.json: recorded.commit, recorded.dirty), as a run from the
checkout itself does. Another folder is copied as it is (its code folders only).

The library is frozen with the codebase when it is imported from it (a source checkout, `pip install -e .`):
the jobs start in `lib/` (sbatch --chdir), and Python, which runs submitit's job module with `-m`, imports
from its working directory first, so vlprompt comes from the copy (and only vlprompt: the codebase's
datasets/ never shadows an installed `datasets`). An installed vlprompt (a wheel) is frozen by being
installed; only the codebase is copied then. The runs' paths are made absolute at submission, since the
jobs no longer start where the command was run.
"""
import dataclasses
import os
import shutil
import subprocess
import time

from .options import SlurmLauncherError

CODE_PARTS = ("train.py", "trainers", "datasets", "configs", "vlprompt")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


@dataclasses.dataclass
class Snapshot:
    folder: str
    codebase: str                 # the copy the jobs use as their codebase (repo)
    workdir: str                  # the jobs' working directory (lib/)
    frozen_library: bool = False  # whether the jobs import vlprompt from the copy
    commit: str = None
    dirty: bool = None

    def sbatch_parameters(self):
        return {"chdir": self.workdir}


def _git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=120)


def _git_root(repo):
    try:
        top = _git(repo, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    if top.returncode != 0 or os.path.realpath(top.stdout.strip()) != os.path.realpath(repo):
        return None  # not a checkout, or a folder inside a bigger one: copied as it is
    return repo


def freeze_codebase(repo, snapshots_dir):
    """Copy the codebase `repo` into a new folder of `snapshots_dir` (module docstring); returns its Snapshot."""
    import vlprompt

    repo = os.path.abspath(repo)
    head = _git(repo, "rev-parse", "HEAD").stdout.strip() if _git_root(repo) else ""
    folder = os.path.join(snapshots_dir, time.strftime("%Y%m%d-%H%M%S") + f"-{head[:10] or 'copy'}-{os.getpid()}")
    code, lib = os.path.join(folder, "codebase"), os.path.join(folder, "lib")
    try:
        os.makedirs(folder)
        if head:
            _clone(repo, head, code)
            _overlay_changes(repo, code)
        else:
            _copy_parts(repo, code)
        os.makedirs(lib)
        package = os.path.dirname(os.path.abspath(vlprompt.__file__))
        frozen_library = os.path.realpath(os.path.dirname(package)) == os.path.realpath(repo)
        if frozen_library:
            os.symlink(os.path.join("..", "codebase", "vlprompt"), os.path.join(lib, "vlprompt"))
    except (OSError, subprocess.SubprocessError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise SlurmLauncherError(f"--freeze-code: cannot copy {repo} to {folder}: {e}") from None
    dirty = bool(_git(code, "status", "--porcelain", "--untracked-files=no").stdout.strip()) if head else None
    return Snapshot(folder, code, lib, frozen_library, head or None, dirty)


def _clone(repo, commit, code):
    for argv in (["clone", "--quiet", "--no-checkout", repo, code], ["-C", code, "checkout", "--quiet", "--detach",
                                                                     commit]):
        proc = subprocess.run(["git", *argv], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise OSError(f"git {' '.join(argv[:2])} failed: {proc.stderr.strip()}")


def _overlay_changes(repo, code):
    """The checkout's differences from HEAD (edited, staged, deleted tracked files; new files in CODE_PARTS)."""
    changed = _git(repo, "diff", "--name-only", "-z", "--no-renames", "HEAD").stdout.split("\0")
    new = _git(repo, "ls-files", "-z", "--others", "--exclude-standard", "--", *CODE_PARTS).stdout.split("\0")
    for relative in filter(None, changed + new):
        source, target = os.path.join(repo, relative), os.path.join(code, relative)
        if os.path.lexists(source):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        elif os.path.lexists(target):
            os.remove(target)


def _copy_parts(repo, code):
    os.makedirs(code)
    for part in CODE_PARTS:
        source = os.path.join(repo, part)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(code, part), ignore=IGNORED)
        elif os.path.isfile(source):
            shutil.copy2(source, os.path.join(code, part))


def frozen_spec(spec, repo, snapshot):
    """A RunSpec for a job of the snapshot: its paths absolute (the jobs start in the snapshot), its config files
    the snapshot's copies where they are the checkout's."""
    def absolute(path):
        return os.path.abspath(path) if path else path

    def moved(path):
        path = absolute(path)
        root = os.path.abspath(repo)
        if not path or os.path.commonpath([path, root]) != root:
            return path
        return os.path.join(snapshot.codebase, os.path.relpath(path, root))

    return spec.replace(config_file=moved(spec.config_file), dataset_config_file=moved(spec.dataset_config_file),
                        output_dir=absolute(spec.output_dir), root=absolute(spec.root),
                        model_dir=absolute(spec.model_dir), resume=absolute(spec.resume))
