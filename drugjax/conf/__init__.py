"""drugjax's configs, shipped inside the package: the Hydra groups of ``train.py`` and
``evaluate.py`` (``train.yaml``, ``evaluate.yaml``, ``model/``, ``data/``, ...), the
hashtag dictionary and the transaction-evidence blacklist. The checkout's top-level
``conf/`` is a link to this folder, so there is one copy of each file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def packaged(name: str) -> Path:
    """The path of a config file shipped with drugjax, e.g. ``packaged("blacklist.yaml")``."""
    return Path(str(resources.files(__name__).joinpath(name)))


def groups() -> list[str]:
    """The config groups shipped with drugjax (``data``, ``experiment``, ``model``, ...):
    the folders beside train.yaml."""
    root = resources.files(__name__)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("__"))
