"""A drugjax installed from its wheel, outside the checkout, runs its commands.

The wheel is built from (a copy of) the repository (``pip wheel .``) and installed with ``pip install``
into a fresh venv in a temporary folder; the commands then run there, with the temporary
folder as the working directory, so nothing can come from the checkout: the configs, the
dictionary, the blacklist and the stand-in's weights must all travel inside the package.
drugjax's dependencies are lent to the venv from the test's own environment (one line in a
``.pth`` file) instead of being installed again, which keeps the test to a minute; the
wheel itself is installed without them (``--no-deps``).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.backbone.name=tiny", "model.hidden=[16,16]", "data.image_size=16", "data.batch_size=8",
        "data.eval_batch_size=8"]


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's python, a working folder outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    wheels, venv, work = base / "wheels", base / "venv", base / "work"
    work.mkdir()
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = base / "source"
    skipped = {".git", "build", "runs", "outputs", "multirun", "data", ".pytest_cache"}

    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == REPO
        return [n for n in names if n == "__pycache__" or n.endswith(".egg-info")
                or (top and (n in skipped or n.startswith(".venv")))]

    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(wheels)], cwd=base)
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    venv_site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies, lent from this environment; site-packages of the venv come first.
    lent = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()]
    (venv_site / "zz_lent_dependencies.pth").write_text("\n".join(dict.fromkeys(lent)) + "\n")
    (wheel,) = wheels.glob("drugjax-*.whl")
    _run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], cwd=base)
    return python, work


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    python, work = installed
    where = _run([str(python), "-c", "import drugjax; print(drugjax.__file__)"], cwd=work).stdout.strip()
    assert Path(where).resolve().is_relative_to(python.parent.parent.resolve()), where


@pytest.mark.slow  # about 60-90 s on 2 cores: CI runs the slow set
def test_world_validate_train_evaluate_detect_from_the_wheel(installed):
    python, work = installed
    py = str(python)
    world = work / "world"
    _run([py, "-m", "drugjax.synthetic", str(world), "--preset", "tiny", "--seed", "0", "--image-size", "16"],
         cwd=work)
    assert "records" in _run([py, "-m", "drugjax.data", "validate", str(world)], cwd=work).stdout
    data = ["data=dir", f"data.root={world}", f"data.data_dir={work / 'cache'}"]

    trained = _run([py, "-m", "drugjax.train", *data, *TINY, "progress=false", "steps=2", "eval_every=2", "checkpoint_every=2",
                    f"workdir={work / 'run'}"], cwd=work)
    assert "validation (drug head" in trained.stdout
    assert json.loads((work / "run" / "results.json").read_text())["step"] == 2

    _run([py, "-m", "drugjax.evaluate", *data, *TINY, "image.steps=4", "image.chunk_steps=2",
          "dealers.num_folds=2", f"workdir={work / 'evaluation'}"], cwd=work)
    assert (work / "evaluation" / "table1.csv").exists() and (work / "evaluation" / "table2.csv").exists()

    # detect with its packaged dictionary and the evaluation's models (the blacklist is packaged too)
    _run([py, "-m", "drugjax.detect", str(world), "--models", str(work / "evaluation"),
          "--out", str(work / "review")], cwd=work)
    assert (work / "review" / "review.csv").read_text().count("\n") >= 2
