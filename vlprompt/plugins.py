"""Finding a codebase's `datasets/` (and `scripts/`) without editing `sys.path`.

The readers and trainers live in a codebase (vlprompt's repository, or a CoOp/MaPLe-style one they were
copied into), not in the installed library. Tools that need them (`vlprompt data check`, `vlprompt run`)
look in, in order: the folder given on the command line (`--repo DIR`) or $VLPROMPT_REPO (either must
hold what is looked for), the current directory, and vlprompt's own codebase: the checkout it is imported
from, or the copy of train.py, configs/, trainers/ and datasets/ a wheel installs with it. A codebase's
`datasets/` package is imported from its files under its own name, as its train.py would, so its
relative imports work; `sys.path` is left as it was.
"""
import glob
import importlib
import importlib.util
import os
import sys

from .errors import UserError

REPO_ENV = "VLPROMPT_REPO"


class CodebaseNotFound(UserError):
    pass


def own_codebases():
    """vlprompt's own codebase: the checkout the package is imported from (a source tree or an editable
    install), then the copy a wheel carries under vlprompt/_codebase (setup.py bundles it)."""
    package = os.path.dirname(os.path.abspath(__file__))
    return [("the checkout vlprompt is imported from", os.path.dirname(package)),
            ("the copy installed with vlprompt", os.path.join(package, "_codebase"))]


def find_codebase(marker, repo=None, what="the codebase"):
    """The folder that holds `marker` (a relative path): `repo` (--repo) or $VLPROMPT_REPO when given (it
    must hold it), else the current directory, else vlprompt's own codebase (own_codebases)."""
    for name, folder in (("--repo", repo), (f"${REPO_ENV}", os.environ.get(REPO_ENV))):
        if folder:
            if os.path.exists(os.path.join(folder, marker)):
                return os.path.abspath(folder)
            raise CodebaseNotFound(f"Cannot find {what} in {name} ({folder}): it has no {marker}")
    candidates = [("the current directory", os.getcwd()), *own_codebases()]
    for _, folder in candidates:
        if os.path.exists(os.path.join(folder, marker)):
            return os.path.abspath(folder)
    tried = ", ".join(f"{name} ({folder})" for name, folder in candidates)
    raise CodebaseNotFound(f"Cannot find {what} (no {marker} in {tried}): run from the repository root, pass "
                           f"--repo DIR, or set {REPO_ENV}=DIR")


def import_package_modules(folder, package):
    """Import every `<folder>/<package>/*.py` (not starting with "_") as `<package>.<module>`."""
    package_dir = os.path.join(folder, package)
    loaded = sys.modules.get(package)
    if loaded is None:
        init = os.path.join(package_dir, "__init__.py")
        spec = importlib.util.spec_from_file_location(package, init if os.path.isfile(init) else None,
                                                      submodule_search_locations=[package_dir])
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[package] = loaded
        if spec.loader is not None:
            spec.loader.exec_module(loaded)
    elif os.path.abspath(package_dir) not in [os.path.abspath(p) for p in getattr(loaded, "__path__", [])]:
        raise CodebaseNotFound(f"A package named {package!r} is already imported from "
                               f"{getattr(loaded, '__file__', None) or list(getattr(loaded, '__path__', []))}, not "
                               f"from {package_dir}: run the command in a fresh interpreter")
    names = []
    for path in sorted(glob.glob(os.path.join(glob.escape(package_dir), "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if not name.startswith("_"):
            importlib.import_module(f"{package}.{name}")
            names.append(name)
    return names
