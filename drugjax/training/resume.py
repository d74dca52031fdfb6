"""Resuming a run from its checkpoints: what may change, and where the data stood.

A run directory is resumed only with the config it was started with, except the keys in
:data:`RESUME_FREE` (logging, intervals, the parallel layout, ...). ``steps`` may change
only where it does not shape the learning rate. The data iterator's position is restored
from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from drugjax.training.checkpoint import CheckpointError, Checkpoints
from drugjax.training.config import ConfigError, TrainConfig
from drugjax.training.state import TrainState
from drugjax.runtime.trees import flatten

log = logging.getLogger(__name__)

# Config keys that may change between a run and its resumption (``steps``: see
# check_steps_change).
RESUME_FREE = {"workdir", "steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "progress",
               "tensorboard", "objective", "tags", "name", "parallel", "data.workers", "init_from"}


def config_changes(saved: Mapping, current: Mapping) -> dict[str, tuple]:
    """``{"model.hidden": (saved, now)}`` for every key that differs and may not."""
    a = {".".join(k): v for k, v in flatten(saved).items()}
    b = {".".join(k): v for k, v in flatten(current).items()}
    defaults = {".".join(k): v for k, v in flatten(dataclasses.asdict(TrainConfig())).items()}
    changed = {}
    for key in sorted(set(a) | set(b)):
        parts = key.split(".")
        if key in RESUME_FREE or parts[0] in RESUME_FREE or ".".join(parts[:2]) in RESUME_FREE:
            continue
        if key not in a and b.get(key) == defaults.get(key, object()):
            continue  # a key added to the schema since that run, at its default: no change
        if a.get(key) != b.get(key):
            changed[key] = (a.get(key), b.get(key))
    return changed


def check_steps_change(saved_cfg: Mapping, cfg: TrainConfig, workdir: Path) -> None:
    """``steps`` may change on resume only where it does not shape the learning rate."""
    saved_steps = saved_cfg.get("steps")
    if saved_steps is None or saved_steps == cfg.steps:
        return
    warmup_same = min(cfg.optim.warmup_steps, saved_steps - 1) == min(cfg.optim.warmup_steps, cfg.steps - 1)
    if cfg.optim.schedule == "constant" and warmup_same:
        log.info("steps changed from %d to %d on resume (constant schedule: the rate is unchanged)", saved_steps, cfg.steps)
        return
    raise ConfigError(
        f"{workdir} was started with steps={saved_steps}; now steps={cfg.steps}. The "
        f"{cfg.optim.schedule} learning-rate schedule spans `steps`, so resuming with another value "
        f"would bend the schedule half-way. Resume with steps={saved_steps}, or train longer in a new "
        f"run warm-started from this one: name=NEW init_from={workdir} steps={cfg.steps}"
    )


def restore_data_state(loader: Any, meta: Mapping, step_dir: Path) -> None:
    """Put the data iterator where the checkpoint's was. Every host's iterator has the
    same state (one seed, one global sequence; each host reads its rows of each batch),
    so the one process 0 saved serves all, on any number of hosts and devices."""
    try:
        loader.set_state(meta.get("data_state"))
    except ValueError as e:
        raise ConfigError(f"cannot resume the data iterator saved in {step_dir}: {e}") from None


def restore(checkpoints: Checkpoints, state: TrainState, loader: Any, config: dict, cfg: TrainConfig,
            workdir: Path) -> tuple[int, TrainState] | None:
    """``(step, state)`` of the latest readable checkpoint, with ``loader`` moved to its
    position; None for a new run. Raises ConfigError/CheckpointError (checkpoints closed)
    when the run directory holds a run that this config may not continue."""

    def check(saved_config: dict) -> None:
        changes = config_changes(saved_config, config)
        if changes:
            raise ConfigError(
                f"{workdir} holds a run with a different config (saved, now): {changes}. "
                "Use another run directory (e.g. name=...) or delete that one to start afresh."
            )
        check_steps_change(saved_config, cfg, workdir)

    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), state.to_tree())
    try:
        restored = checkpoints.restore_latest(abstract, check_config=check)
        if restored is None:
            return None
        step, tree, meta, _ = restored
        restore_data_state(loader, meta, checkpoints.directory / str(step))
    except (ConfigError, CheckpointError):
        checkpoints.close()
        raise
    return step, state.from_tree(tree)
