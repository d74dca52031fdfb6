"""Checkpoints with orbax: the latest N and the best by a validation metric, resumable.

Each step directory holds three items:

* ``state`` (``StandardSave``): step, params, batch stats, optimiser state, RNG;
* ``meta`` (``JsonSave``): the data iterator's state, a SHA-256 of the state's bytes
  (so a silently damaged array is caught on restore, not trained on) and the step;
* ``config`` (``JsonSave``): the resolved run config.

Saves are asynchronous; :meth:`Checkpoints.wait` surfaces their errors. A save that fails
for want of space is a :class:`drugjax.errors.DiskFullError` naming the checkpoint
directory and the last good step, which the next run resumes from. A restore that
fails because the checkpoint is damaged (unreadable files, missing items, checksum
mismatch) moves that step directory aside to ``<run>/checkpoints.corrupt/`` with a
warning and falls back to the previous step; nothing there is ever deleted. A checkpoint
that is intact but holds a state of another structure (another model, or an optimiser
whose state changed with a library upgrade) is not damaged: it is compared with the
model's state through orbax's metadata, before any array is read, and the run stops with
:class:`CheckpointMismatch` naming what differs. Orbax writes each step to a temporary
directory and renames it when complete, so a save cut short by a kill leaves no step
directory at all (the temporary one is cleaned up on the next start).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import warnings
from pathlib import Path
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from drugjax.errors import UserError, full_disk_reported
from drugjax.runtime.logs import quiet_absl, quiet_full_disk_echoes

log = logging.getLogger(__name__)


# Checkpoints between evaluations carry no metrics by design; orbax warns on each.
quiet_absl("did not provide metrics")
# A save that fails for want of space is one DiskFullError (Checkpoints._full_disk), not
# orbax's, asyncio's and tensorstore's tracebacks of each of its threads.
quiet_full_disk_echoes()

BEST_MODES = {"loss": "min"}  # every other metric is better when larger


def tree_digest(tree: Any) -> str:
    """SHA-256 over the bytes, dtypes and shapes of a pytree's leaves, in tree order."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(jax.device_get(leaf))
        if arr.dtype.kind == "V" or str(arr.dtype).startswith("key<"):
            arr = np.asarray(jax.random.key_data(leaf))
        h.update(jax.tree_util.keystr(path).encode())
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _global_arrays(tree: Any) -> Any:
    """``tree`` with host-local arrays made global, on several hosts (no-op on one).

    A multi-host ``pmap`` returns its unreplicated outputs (the train state, with
    ``out_axes=None``) as arrays replicated over this host's devices only, and orbax
    refuses to write such host-local arrays in a multi-host run. The same values are on
    every host, so they are the replicated global array over all devices.
    """
    if jax.process_count() == 1:
        return tree

    def to_global(x):
        if isinstance(x, jax.Array) and x.is_fully_addressable:
            return ocp.utils.fully_replicated_host_local_array_to_global_array(x)
        return x

    return jax.tree.map(to_global, tree)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be restored."""


class CheckpointMismatch(CheckpointError):
    """An intact checkpoint whose state does not fit this model and optimiser."""


def _path_names(path: tuple) -> tuple[str, ...]:
    # Orbax stores namedtuples and lists as string-keyed nodes: compare by name alone.
    names = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                names.append(str(getattr(key, attr)))
                break
        else:
            names.append(str(key))
    return tuple(names)


def _leaf_specs(tree: Any) -> dict[tuple[str, ...], tuple[tuple[int, ...], str]]:
    """``{path: (shape, dtype)}`` of a tree of arrays, ShapeDtypeStructs or orbax metadata."""
    return {
        _path_names(path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def structure_differences(saved: Any, expected: Any, limit: int = 5) -> list[str]:
    """What keeps the saved state tree from fitting the expected one, in words ([] = fits)."""
    have, want = _leaf_specs(saved), _leaf_specs(expected)
    show = lambda path: "/".join(path)  # noqa: E731
    out = [f"missing from the checkpoint: {show(p)}" for p in sorted(set(want) - set(have))]
    out += [f"in the checkpoint but not in this model: {show(p)}" for p in sorted(set(have) - set(want))]
    out += [
        f"{show(p)}: saved {have[p][0]} {have[p][1]}, this model has {want[p][0]} {want[p][1]}"
        for p in sorted(set(have) & set(want)) if have[p] != want[p]
    ]
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


class Checkpoints:
    """The run's checkpoints under ``directory`` (normally ``<run>/checkpoints``)."""

    def __init__(self, directory: str | Path, *, keep: int = 2, best_metric: str = "auc", async_save: bool = True):
        if keep < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
        self.directory = Path(directory).absolute()
        self.keep = keep
        self.best_metric = best_metric
        self.async_save = async_save
        self._open()

    def _open(self) -> None:
        mode = BEST_MODES.get(self.best_metric, "max")
        metric = self.best_metric

        def get(m):
            return float(m[metric])

        policy = pp.AnyPreservationPolicy(
            [
                pp.LatestN(n=self.keep),
                pp.BestN(get_metric_fn=get, reverse=(mode == "min"), n=1, keep_checkpoints_without_metrics=False),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            best_fn=get,
            best_mode=mode,
            enable_async_checkpointing=self.async_save,
            cleanup_tmp_directories=True,
            create=True,
        )
        # Handlers named up front, so the state's metadata can be read before any restore.
        handlers = {
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
            "config": ocp.JsonCheckpointHandler(),
        }
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    # ---------------------------------------------------------------- saving
    def save(
        self,
        step: int,
        state_tree: Any,
        *,
        data_state: Any,
        config: dict,
        metrics: dict[str, float] | None = None,
        extra_meta: dict | None = None,
    ) -> None:
        """Save ``state_tree`` (see ``TrainState.to_tree``) at ``step`` (asynchronously).

        ``extra_meta`` adds JSON fields to the meta item (e.g. every host's data state).
        """
        meta = {"step": int(step), "data_state": data_state, "state_sha256": tree_digest(state_tree),
                **(extra_meta or {})}
        if metrics is not None:
            metrics = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
            if self.best_metric not in metrics:
                metrics = None
        with self._full_disk():  # this save's synchronous part, or the previous save's end
            self.manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(_global_arrays(state_tree)),
                    meta=ocp.args.JsonSave(meta),
                    config=ocp.args.JsonSave(config),
                ),
                metrics=metrics,
                force=True,
            )

    def wait(self) -> None:
        """Block until pending saves are written; raises their errors."""
        with self._full_disk():
            self.manager.wait_until_finished()

    def close(self) -> None:
        with self._full_disk():
            try:
                self.manager.wait_until_finished()
            finally:
                self.manager.close()

    def _full_disk(self):
        """A save that fails for want of space becomes one line naming the directory and
        the last good checkpoint (a step directory orbax finished: renamed into place)."""
        done = sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())
        then = (f"it resumes from step {done[-1]}, the last good checkpoint there" if done
                else "no checkpoint was saved yet, so it starts from the beginning")
        return full_disk_reported(f"a checkpoint into {self.directory}", then)

    # ---------------------------------------------------------------- restoring
    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def check_structure(self, step: int, abstract_state: Any) -> None:
        """Raise :class:`CheckpointMismatch` when ``step`` holds a state of another structure.

        Reads orbax's metadata only; a checkpoint whose metadata cannot be read is damaged
        (:class:`CheckpointError`).
        """
        try:
            saved = self.manager.item_metadata(step)["state"]
            saved = getattr(saved, "tree", saved)
        except Exception as e:  # noqa: BLE001 - orbax raises many types for damaged files
            raise CheckpointError(f"its metadata cannot be read ({type(e).__name__}: {e})") from e
        if saved is None:
            raise CheckpointError("its state item has no metadata")
        differences = structure_differences(saved, abstract_state)
        if differences:
            raise CheckpointMismatch(
                f"{self.directory / str(step)} is intact but does not fit this model and optimiser "
                f"(a changed model or optimiser config, or a library upgrade that changed the optimiser "
                f"state): {'; '.join(differences)}. Nothing was moved. To go on, start a new run "
                f"directory (name=... or workdir=...) and warm-start it from this one with "
                f"init_from={self.directory.parent} (parameters only), or go back to the code and "
                f"config that wrote it"
            )

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict, dict]:
        """``(state_tree, meta, config)`` of ``step``; raises :class:`CheckpointError`
        (:class:`CheckpointMismatch` for an intact checkpoint of another structure)."""
        self.check_structure(step, abstract_state)
        try:
            out = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    meta=ocp.args.JsonRestore(),
                    config=ocp.args.JsonRestore(),
                ),
            )
            state, meta, config = out["state"], out["meta"], out["config"]
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            raise CheckpointError(f"{type(e).__name__}: {e}") from e
        if not isinstance(meta, dict) or "state_sha256" not in meta:
            raise CheckpointError("its meta item is missing or incomplete")
        digest = tree_digest(state)
        if digest != meta["state_sha256"]:
            raise CheckpointError("the state's checksum does not match the one saved with it")
        return state, meta, config

    def read_config(self, step: int) -> dict:
        """The run config saved with ``step``; raises :class:`CheckpointError`."""
        try:
            return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{type(e).__name__}: {e}") from e

    def restore_latest(self, abstract_state: Any, check_config: Callable[[dict], None] | None = None) -> tuple[int, Any, dict, dict] | None:
        """Restore the newest readable step, setting damaged ones aside with a warning.

        ``check_config(saved_config)`` runs first and may raise (e.g. when the saved run
        has a different model): such an error propagates and nothing is moved, since a
        checkpoint of another config is not a damaged one.

        Returns ``(step, state_tree, meta, config)``, or None when there is no checkpoint.
        """
        while True:
            step = self.latest_step()
            if step is None:
                return None
            try:
                if check_config is not None:
                    check_config(self.read_config(step))
                state, meta, config = self.restore(step, abstract_state)
                return step, state, meta, config
            except CheckpointMismatch:
                raise  # intact: never moved aside
            except CheckpointError as e:
                self._set_aside(step, e)

    def _set_aside(self, step: int, error: Exception) -> None:
        """Move a damaged step directory to ``checkpoints.corrupt/`` under a name not yet
        taken there (an earlier quarantined copy is never replaced)."""
        corrupt = self.directory.parent / f"{self.directory.name}.corrupt"
        aside = corrupt / str(step)
        n = 1
        while aside.exists():
            aside = corrupt / f"{step}.{n}"
            n += 1
        msg = (
            f"checkpoint {self.directory / str(step)} is unreadable ({error}); moved it to "
            f"{aside} and falling back to the previous checkpoint"
        )
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        log.warning(msg)
        corrupt.mkdir(parents=True, exist_ok=True)
        self.manager.close()
        shutil.move(str(self.directory / str(step)), str(aside))
        self._open()


def read_params(path: str | Path) -> dict:
    """Params and batch stats of a checkpoint, for warm starts (``init_from=PATH``).

    ``path`` may be a run directory, its ``checkpoints/`` directory (the latest step is
    used) or one step directory (e.g. the best one, named in the run's results.json). Returns ``{"params", "batch_stats"}`` as
    numpy arrays.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise FileNotFoundError(f"init_from={path}: no such file or directory")
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if not (path / "state").is_dir():
        steps = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        if not steps:
            raise FileNotFoundError(
                f"init_from={path}: no orbax checkpoint here; give a run directory, its "
                "checkpoints/ directory or one step directory"
            )
        step = steps[-1]
        path = path / str(step)
    tree = ocp.StandardCheckpointer().restore(path / "state")
    return {"params": tree["params"], "batch_stats": tree.get("batch_stats") or {}}
