"""Hydra's record of a run (``.hydra/``), written by drugjax itself once the run's checks
have passed.

train.py and evaluate.py turn Hydra's own writing off (``hydra.output_subdir: null``):
Hydra writes before any check, so a refused run would overwrite the record of the run
that is already in the directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


def record_writer(cfg: DictConfig) -> Callable[[Path], None] | None:
    """A function that writes ``.hydra/config.yaml``, ``overrides.yaml`` and ``hydra.yaml``
    into a run directory (None outside a Hydra run, e.g. under the compose API)."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()

    def write(workdir: Path) -> None:
        record = Path(workdir) / ".hydra"
        record.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, record / "config.yaml", resolve=False)
        OmegaConf.save(OmegaConf.create(list(hydra_cfg.overrides.task)), record / "overrides.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": OmegaConf.to_container(hydra_cfg)}), record / "hydra.yaml")
    return write
