"""Installs the `vlprompt` library.

`trainers/` and `datasets/` are deliberately *not* installed: they are used from the repository root
(as in CoOp/MaPLe), or copied into an existing Dassl codebase. A top-level `datasets` package in
site-packages would shadow HuggingFace `datasets`.
"""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    scope = {}
    with open(os.path.join(HERE, "vlprompt", "version.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


setup(
    name="vlprompt",
    version=read_version(),
    description="Prompt learning for CLIP (ZS-CLIP, CoOp, CoCoOp, MaPLe, IVLP, VPT, MetaPrompt, CoPL) "
    "as Dassl trainers, with a built-in Dassl-compatible engine",
    long_description=open(os.path.join(HERE, "README.md")).read() if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["vlprompt", "vlprompt.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=1.13",
        "torchvision",
        # OpenAI's CLIP, packaged for PyPI. It imports `pkg_resources`, which setuptools>=81 no longer
        # ships; vlprompt shims it when missing, and this pin keeps a plain `import clip` working too.
        "clip-anytorch>=2.5",
        "setuptools<81",
        "yacs",
        "ftfy",
        "regex",
        "tqdm",
        "tabulate",
        "gdown",
        "numpy",
        "Pillow",
        "scipy",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={"console_scripts": ["vlprompt=vlprompt.cli:main"]},
)
