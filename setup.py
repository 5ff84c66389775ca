"""The packaging metadata lives in pyproject.toml (PEP 621); this file adds one build step.

A wheel (`pip install .`, `python -m build`) also carries the codebase the `vlprompt` command runs,
train.py, configs/, trainers/ and datasets/, as data under vlprompt/_codebase/, so `vlprompt run` and
`vlprompt data check` work from a regular install, outside a checkout (vlprompt.plugins.find_codebase
falls back to it). They stay out of the top level of site-packages: a top-level `datasets` package there
would shadow HuggingFace `datasets`. An editable install uses the checkout itself.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CODEBASE = ("train.py", "configs", "trainers", "datasets")


class BuildWithCodebase(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, "vlprompt", "_codebase")
        for name in CODEBASE:
            source = os.path.join(HERE, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(target, name), dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif os.path.isfile(source):
                os.makedirs(target, exist_ok=True)
                shutil.copy2(source, os.path.join(target, name))
            else:
                raise FileNotFoundError(f"cannot bundle {source}: build from the repository (it holds {', '.join(CODEBASE)})")


setup(cmdclass={"build_py": BuildWithCodebase})
