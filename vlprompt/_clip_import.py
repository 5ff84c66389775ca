"""Lets `import clip` work where setuptools>=81 no longer ships `pkg_resources`, without importing it.

OpenAI's `clip` (packaged as clip-anytorch) reads `pkg_resources.packaging` at import time and nothing
else from it. When `pkg_resources` is missing, `import vlprompt` adds a finder that wraps the loader of
the `clip` package only: while `clip` executes, a stand-in `pkg_resources` holding `packaging` is in
sys.modules, and it is removed afterwards, so no other package ever sees it. Nothing heavy is imported
until something imports `clip`.
"""
import contextlib
import importlib.abc
import importlib.util
import sys
import types


def pkg_resources_missing():
    if "pkg_resources" in sys.modules:
        return False
    try:
        return importlib.util.find_spec("pkg_resources") is None
    except (ImportError, ValueError):
        return True


@contextlib.contextmanager
def pkg_resources_stand_in():
    """A `pkg_resources` module exposing `packaging`, present only inside the block."""
    if not pkg_resources_missing():
        yield
        return
    import packaging.version  # noqa: F401  (clip reads packaging.version through the stand-in)

    stub = types.ModuleType("pkg_resources")
    stub.packaging = sys.modules["packaging"]
    sys.modules["pkg_resources"] = stub
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]


class _StandInLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with pkg_resources_stand_in():
            self.loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)


class _ClipFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "clip":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and pkg_resources_missing():
                    spec.loader = _StandInLoader(spec.loader)
                return spec
        return None


def install():
    """Put the finder first on sys.meta_path once, where `pkg_resources` is missing and `clip` not imported."""
    if "clip" in sys.modules or any(isinstance(f, _ClipFinder) for f in sys.meta_path):
        return
    if pkg_resources_missing():
        sys.meta_path.insert(0, _ClipFinder())
