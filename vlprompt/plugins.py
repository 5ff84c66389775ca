"""Finding a codebase's `datasets/` (and `scripts/`) without editing `sys.path`.

The readers and trainers live in a codebase (vlprompt's repository, or a CoOp/MaPLe-style one they were
copied into), not in the installed library. Tools that need them (`vlprompt data check`, `vlprompt run`)
look in, in order: the folder given on the command line (`--repo DIR`) or $VLPROMPT_REPO (either must
hold what is looked for), the current directory, and vlprompt's own codebase: the checkout it is imported
from, or the copy of train.py, configs/, trainers/ and datasets/ a wheel installs with it. A codebase's
`datasets/` package is imported from its files under a private package name
(`_vlprompt_codebase_<hash>.datasets`), so that its relative imports work and it never shadows an installed
package; `sys.path` is left as it was.
"""
import glob
import hashlib
import importlib
import importlib.machinery
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


def codebase_package(folder):
    """The private package name a codebase's trainers/ and datasets/ are imported under: never `trainers` or
    `datasets` (a top-level `datasets` would shadow HuggingFace's), one per codebase folder."""
    digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:10]
    return f"_vlprompt_codebase_{digest}"


def _package(name, path):
    """A namespace-like package `name` whose submodules are looked up in `path` (no sys.path change)."""
    module = sys.modules.get(name)
    if module is None:
        init = os.path.join(path, "__init__.py")
        if os.path.isfile(init):
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[path])
        else:  # a folder without __init__.py (the codebase's root): a package with no code of its own
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [path]
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            if spec.loader is not None:
                spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def import_package_modules(folder, package):
    """Import every `<folder>/<package>/*.py` (not starting with "_") from its file, as a module of the
    codebase's private package (codebase_package); its relative imports work. Returns the module names."""
    root = codebase_package(folder)
    _package(root, os.path.abspath(folder))
    _package(f"{root}.{package}", os.path.join(os.path.abspath(folder), package))
    names = []
    for path in sorted(glob.glob(os.path.join(glob.escape(os.path.join(folder, package)), "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if not name.startswith("_"):
            importlib.import_module(f"{root}.{package}.{name}")
            names.append(name)
    return names


def load_codebase(folder, packages=("trainers", "datasets")):
    """Import a codebase's trainers/ and datasets/ (each module registers what it defines), once per folder."""
    for package in packages:
        if os.path.isdir(os.path.join(folder, package)):
            import_package_modules(folder, package)


def is_codebase_module(module_name, folder=None, package=None):
    """Whether a module (a class's __module__) comes from a codebase's trainers/ or datasets/ (of `folder`,
    when given)."""
    parts = module_name.split(".")
    if len(parts) < 3 or not parts[0].startswith("_vlprompt_codebase_"):
        return False
    return (folder is None or parts[0] == codebase_package(folder)) and (package is None or parts[1] == package)
