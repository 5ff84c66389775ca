"""Finding a codebase's `datasets/` (and `scripts/`) without editing `sys.path`.

The readers and trainers live in a codebase (vlprompt's repository, or a CoOp/MaPLe-style one they were
copied into), not in the installed library. Tools that need them (`vlprompt data check`, `vlprompt run`)
look in, in order: the folder given on the command line (`--repo DIR`) or $VLPROMPT_REPO (either must
hold what is looked for), the current directory, and vlprompt's own codebase: the checkout it is imported
from, or the copy of train.py, configs/, trainers/ and datasets/ a wheel installs with it. A codebase's
`datasets/` package is imported from its files under a private package name
(`_vlprompt_codebase_<hash>.datasets`), so that its relative imports work and it never shadows an installed
package; `sys.path` is left as it was.

A Dassl codebase takes vlprompt's trainers without copying their files with `use_trainers`: all, some, or
some under other names, so that the codebase keeps its own trainers of the same names (a fork's modified
`MaPLe`, say) next to vlprompt's.
"""
import contextlib
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


def import_package_modules(folder, package, root=None):
    """Import every `<folder>/<package>/*.py` (not starting with "_") from its file, as a module of the
    codebase's private package (codebase_package, or `root`); its relative imports work. Returns the module
    names."""
    root = root or codebase_package(folder)
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
    # use_trainers imports vlprompt's trainers under codebase_package(folder) + "_offered"
    return (folder is None or parts[0].startswith(codebase_package(folder))) and \
        (package is None or parts[1] == package)


# ------------------------------------------------------------------------------ vlprompt's trainers
class TrainerNameError(UserError, KeyError):
    def __str__(self):
        return str(self.args[0]) if self.args else ""


_OFFERED = {}  # vlprompt's codebase folder -> {vlprompt's registered name: class}, imported once


def use_trainers(names=None, rename=None, prefix=""):
    """Register vlprompt's trainers into the engine's TRAINER_REGISTRY (Dassl's own where Dassl is used), taken
    from vlprompt's codebase (its checkout, or the copy a wheel installs): no file is copied into the codebase.

        use_trainers()                                   # every one, under its own name
        use_trainers(["CoCoOp", "IVLP"])                 # only these
        use_trainers(rename={"MaPLe": "VLPMaPLe"})       # every one; MaPLe as VLPMaPLe (the codebase keeps its own)
        use_trainers(prefix="VLP")                       # every one as VLP<name>: VLPCoOp, VLPMaPLe, ...

    names: vlprompt's registered names to take (None: all); rename: {vlprompt's name: the name to register it
    under}; prefix: put before the names that `rename` does not give. A renamed trainer reads the same config
    keys (cfg.TRAINER.<its node>, e.g. TRAINER.MAPLE) and writes the same checkpoints as under its own name;
    TRAINER.NAME (--trainer) is the new name. Returns {registered name: class}. A name the codebase has
    registered already (its own trainer) is refused with the ways out, before anything is registered; asking
    again for what is registered already changes nothing."""
    from .engine import TRAINER_REGISTRY

    offered = _offered_trainers()
    rename = dict(rename or {})
    unknown = sorted((set(names or ()) | set(rename)) - set(offered))
    if unknown:
        raise TrainerNameError(f"vlprompt has no trainer named {', '.join(map(repr, unknown))}; its trainers are "
                               f"{', '.join(sorted(offered))}")
    chosen = {rename.get(name, prefix + name): cls for name, cls in offered.items() if names is None or name in names}
    registered = set(TRAINER_REGISTRY.registered_names())
    taken = sorted(n for n, cls in chosen.items()
                   if n in registered and not _same_trainer(TRAINER_REGISTRY.get(n), cls))
    if taken:
        example = taken[0]
        raise TrainerNameError(
            f"Trainer name(s) {', '.join(map(repr, taken))} are registered already (the codebase's own): take "
            f"vlprompt's under another name, e.g. use_trainers(rename={{{example!r}: 'VLP{example}'}}) or "
            "use_trainers(prefix='VLP'), or leave them out: use_trainers([the names wanted])")
    for name, cls in chosen.items():
        if name not in registered:
            TRAINER_REGISTRY._do_register(name, cls)
    return chosen


def _same_trainer(registered, offered):
    """The class registered under a name is the one offered, or the same class of vlprompt's codebase imported
    by load_codebase (vlprompt's own train.py)."""
    if registered is offered:
        return True
    tail = lambda cls: (cls.__module__.split(".")[1:], cls.__qualname__)  # noqa: E731
    folder = _own_codebase_with("trainers")
    return is_codebase_module(registered.__module__, folder, "trainers") and tail(registered) == tail(offered)


def _offered_trainers():
    """{registered name: class} of vlprompt's trainers/, imported (once) under a private package of their own
    with their registrations collected instead of made, so that use_trainers registers them under the names
    asked for."""
    from .engine import TRAINER_REGISTRY

    folder = _own_codebase_with("trainers")
    if folder not in _OFFERED:
        found, root = {}, f"{codebase_package(folder)}_offered"
        try:
            with _collecting_registrations(TRAINER_REGISTRY, found):
                import_package_modules(folder, "trainers", root=root)
        except BaseException:  # a module failed: import them afresh next time
            for name in [n for n in sys.modules if n == root or n.startswith(root + ".")]:
                del sys.modules[name]
            raise
        _OFFERED[folder] = found
    return _OFFERED[folder]


def _own_codebase_with(package):
    for _, folder in own_codebases():
        if os.path.isdir(os.path.join(folder, package)):
            return folder
    raise CodebaseNotFound(f"vlprompt's own {package}/ is not found (looked in "
                           f"{', '.join(folder for _, folder in own_codebases())}): reinstall vlprompt")


@contextlib.contextmanager
def _collecting_registrations(registry, found):
    """While importing: what registers into `registry` lands in `found` ({name: object}) instead (Dassl's
    Registry and the built-in one both register through `_do_register(name, obj, force)`)."""
    if not hasattr(type(registry), "_do_register"):
        raise TypeError(f"{type(registry).__module__}.{type(registry).__name__} has no _do_register: this Dassl "
                        "version's registry is not supported by use_trainers")

    def collect(name, obj, force=False):
        found[name] = obj

    registry._do_register = collect  # the instance attribute shadows the method for the import only
    try:
        yield
    finally:
        del registry._do_register
