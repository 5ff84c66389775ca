"""vlprompt: prompt learning for CLIP as Dassl trainers, on Dassl or on a built-in engine."""
from .version import __version__
from .clip_loader import clip as _clip  # noqa: F401  (makes `import vlprompt, clip` work without pkg_resources)
from .clip_loader import load_clip

__all__ = ["__version__", "load_clip"]
