"""A shim for `python setup.py develop` habits: the packaging metadata lives in pyproject.toml (PEP 621)."""
from setuptools import setup

setup()
