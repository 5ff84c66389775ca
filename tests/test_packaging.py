"""Packaging: pyproject.toml's metadata, and a wheel that builds, installs (not editable) into a fresh
virtual environment and runs the `vlprompt` command from there, also where `pkg_resources` is gone (as
with setuptools>=81).

The venv sees this interpreter's installed packages (a .pth file) and the wheel is installed with
--no-deps --no-index, so nothing is downloaded; the build runs with --no-isolation for the same reason.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from helpers import REPO_ROOT
from test_results import b2n

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli")

BLOCK_PKG_RESOURCES = """\
import importlib.abc, sys


class _NoPkgResources(importlib.abc.MetaPathFinder):
    \"\"\"What an environment with setuptools>=81 looks like to `import pkg_resources`.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "pkg_resources" or name.startswith("pkg_resources."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, _NoPkgResources())
"""


def pyproject():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_core_dependencies_are_what_the_core_imports_and_nothing_is_pinned_down():
    project = pyproject()["project"]
    names = [d.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
             for d in project["dependencies"]]
    assert names == ["torch", "torchvision", "clip-anytorch", "numpy", "pillow", "packaging", "yacs", "tqdm",
                     "tabulate", "matplotlib"]
    assert not any("<" in d for d in project["dependencies"])  # no upper pin (setuptools<81 is gone)
    extras = project["optional-dependencies"]
    assert extras["download"] == ["pooch>=1.7", "gdown"] and extras["data"] == ["scipy"]
    assert extras["slurm"] == ["submitit"]
    assert {"pytest>=7", "pooch>=1.7", "gdown", "scipy", "build"} <= set(extras["test"])
    assert project["scripts"] == {"vlprompt": "vlprompt.cli:main"}
    for key in ("name", "description", "readme", "requires-python", "classifiers", "keywords"):
        assert project.get(key), key
    setup_py = open(os.path.join(REPO_ROOT, "setup.py")).read()
    assert "setup(cmdclass=" in setup_py and "install_requires" not in setup_py  # the metadata is in one place


def run(cmd, cwd, env=None, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_wheel_builds_installs_into_a_fresh_venv_and_the_cli_runs_from_it(tmp_path, caltech_root, tiny_clip_path):
    pytest.importorskip("build")
    src = tmp_path / "src"  # a clean copy: the build never writes into the repository
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in", "train.py"):
        shutil.copy(os.path.join(REPO_ROOT, name), src / name)
    for name in ("vlprompt", "configs", "trainers", "datasets"):
        shutil.copytree(os.path.join(REPO_ROOT, name), src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(src)],
        cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").iterdir()
    from vlprompt.version import __version__

    assert wheel.name == f"vlprompt-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(f"vlprompt-{__version__}.dist-info/METADATA").decode()
        entry_points = zf.read(f"vlprompt-{__version__}.dist-info/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"vlprompt", f"vlprompt-{__version__}.dist-info"}  # no datasets/
    assert "vlprompt/figures.py" in names and "vlprompt/testing/fake_data/__init__.py" in names
    # the codebase `vlprompt run` runs, as data (not top-level packages): every config, trainer and reader
    bundled = {n[len("vlprompt/_codebase/"):] for n in names if n.startswith("vlprompt/_codebase/")}
    in_repo = {os.path.relpath(os.path.join(d, f), REPO_ROOT) for top in ("configs", "trainers", "datasets")
               for d, _, files in os.walk(os.path.join(REPO_ROOT, top)) if "__pycache__" not in d
               for f in files if not f.endswith(".pyc")}
    assert bundled == in_repo | {"train.py"}
    assert "vlprompt = vlprompt.cli:main" in entry_points
    requires = [line[len("Requires-Dist: "):] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert "matplotlib>=3.7" in requires and not any(r.startswith(("setuptools", "scipy", "gdown")) for r in requires
                                                     if "extra ==" not in r)
    assert 'gdown; extra == "download"' in requires and 'scipy; extra == "data"' in requires

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--no-build-isolation", "--quiet", str(wheel)], cwd=tmp_path)
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip()
    # The dependencies: this interpreter's site-packages (where CI installed them; from inside a venv,
    # --system-site-packages would see the base interpreter's instead), after the venv's own, so the wheel's
    # vlprompt is the one imported. Folders added by a .pth line do not run their own .pth files, so an
    # editable install of vlprompt there stays invisible.
    deps = sorted({p for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])})
    with open(os.path.join(site, "zz_dependencies.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    (venv / "no_pkg_resources.py").write_text(BLOCK_PKG_RESOURCES)
    with open(os.path.join(site, "zz_no_pkg_resources.pth"), "w") as f:  # every interpreter of the venv
        f.write(f"import sys; sys.path.insert(0, {str(venv)!r}); import no_pkg_resources\n")

    work = tmp_path / "elsewhere"  # not the repository: only the installed copy can answer
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VLPROMPT_REPO")}
    location = run([str(python), "-c", "import vlprompt; print(vlprompt.__file__)"], cwd=work, env=env).strip()
    assert location == os.path.join(site, "vlprompt", "__init__.py")
    blocked = subprocess.run([str(python), "-c", "import pkg_resources"], cwd=work, env=env, capture_output=True,
                             text=True)
    assert "No module named 'pkg_resources'" in blocked.stderr

    vlprompt = str(venv / "bin" / "vlprompt")
    assert "vlprompt: prompt learning for CLIP" in run([vlprompt, "--help"], cwd=work, env=env)
    assert "OxfordPets           oxford_pets/                37     19/18" in run([vlprompt, "data", "list"],
                                                                                   cwd=work, env=env)
    output = tmp_path / "output"
    b2n(output, "train_base", "caltech101", "Caltech101", 1, 97.0)  # result.json as the scripts write them
    b2n(output, "test_new", "caltech101", "Caltech101", 1, 94.0)
    out = run([vlprompt, "results", "base2new", str(output)], cwd=work, env=env)
    assert "| Caltech101 | 97.00 | 94.00 | 95.48 |" in out
    tables = sorted(os.listdir(output / "tables"))
    assert [os.path.splitext(t)[1] for t in tables] == [".csv", ".md", ".pdf", ".png", ".svg"]
    assert len({os.path.splitext(t)[0] for t in tables}) == 1
    # A protocol from the installed copy, outside any checkout: its status, then a run of it end to end.
    argv = [vlprompt, "run", "base2new", "maple", "--datasets", "caltech101", "--seeds", "1", "--output",
            str(tmp_path / "runs"), "--root", caltech_root, "--gpus", "none"]
    status = subprocess.run(argv + ["--status"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert "  pending  caltech101-seed1-train" in status.stdout, status.stderr
    fast = ["MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
            "USE_CUDA", "False", "OPTIM.MAX_EPOCH", "1", "TRAIN.PRINT_FREQ", "1000"]
    done = subprocess.run(argv + ["--", *fast], cwd=work, env=dict(env, VARIANT=""), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.load(open(tmp_path / "runs/base2new/test_new/caltech101/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx"
                                      "/seed1/result.json"))
    assert result["config_file"] == os.path.join(site, "vlprompt", "_codebase", "configs", "trainers", "MaPLe",
                                                 "vit_b16_c2_ep5_batch4_2ctx.yaml")
    # CLIP through vlprompt, where pkg_resources is missing: `import vlprompt, clip` and loading a checkpoint.
    code = ("import vlprompt, clip, sys\n"
            "assert 'pkg_resources' not in sys.modules\n"
            "print(tuple(clip.tokenize('a photo').shape))\n")
    assert run([str(python), "-c", code], cwd=work, env=env).strip() == "(1, 77)"
