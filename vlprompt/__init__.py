"""vlprompt: prompt learning for CLIP as Dassl trainers, on Dassl or on a built-in engine.

Importing the package is cheap (no torch, no CLIP): `vlprompt.load_clip` and the submodules import
what they need when first used, so `vlprompt --help` and the table commands start at once.
"""
from ._clip_import import install as _install_clip_import

from .version import __version__

_install_clip_import()  # `import vlprompt, clip` works where setuptools>=81 removed pkg_resources

__all__ = ["__version__", "load_clip", "train", "evaluate", "main", "execute", "RunSpec", "RunResult"]

# The library's entry point (vlprompt.entry): one run trained or evaluated, returning its RunResult.
_ENTRY = {"train", "evaluate", "main", "execute", "RunSpec", "RunResult"}


def __getattr__(name):
    if name == "load_clip":
        from .clip_loader import load_clip

        return load_clip
    if name in _ENTRY:
        from . import entry

        return getattr(entry, name)
    raise AttributeError(f"module 'vlprompt' has no attribute {name!r}")
