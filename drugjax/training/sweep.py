"""Many head trainings in one compiled program: vmap over configurations, scan over steps.

On precomputed features the multitask heads are tiny (1024 -> 256 -> 256 -> 4), so one
training is dominated by dispatch, compilation and Python. This engine trains K
configurations at once: the ordinary train step (:func:`drugjax.training.steps.train_step`)
is vmapped over the axes that are arrays — relation weight, learning rate, RMSprop decay,
weight decay, dropout rate, seed, and the fold (as the rows each configuration trains
on) — with the steps inside ``lax.scan``. Configurations that change the program (trunk
widths, task set, dropout on or off) are grouped; one program per group.

A configuration trained here sees exactly the batches, initial parameters and dropout
masks it would see trained alone (``engine="loop"``, the ordinary step one configuration
after another, with train.py's heads: masks drawn for the global batch): same parameters
up to float reassociation (tests/test_sweep.py).

The scan runs in chunks of ``chunk_steps``; between chunks the host checks for NaN/Inf
and saves the sweep's state, so a killed sweep resumes. K is cut into parts that fit a
memory budget; on several devices each part's configuration axis is sharded over them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from drugjax.runtime.digest import digest_json
from drugjax.runtime.progress import Progress
from drugjax.models.heads import MultitaskHeads
from drugjax.tasks import INSTAGRAM_POSITIVE, TASKS
from drugjax.training.config import ConfigError, OptimConfig
from drugjax.training.features import ShuffledOrder
from drugjax.metrics import binary_metrics
from drugjax.training.optim import make_optimizer
from drugjax.training.state import TrainState
from drugjax.training.steps import AXIS, DataParallel, make_steps, train_step

log = logging.getLogger(__name__)

ENGINES = ("vmap", "loop")
_SWEPT = ("relation_weight", "learning_rate", "decay", "weight_decay", "dropout")  # vmapped arrays


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """One training of the trunk and heads on features."""

    relation_weight: float = 0.5
    learning_rate: float = 1e-3
    decay: float = 0.9  # RMSprop's
    weight_decay: float = 1e-4
    seed: int = 0
    fold: int = 0  # the posts of this fold validate; the others (and all web rows) train
    dropout: float = 0.0
    hidden: tuple[int, ...] = (256, 256)
    tasks: tuple[str, ...] = TASKS
    input_norm: bool = False

    def program_key(self) -> tuple:
        """What changes the compiled program (configurations are grouped by it)."""
        return (tuple(self.hidden), tuple(self.tasks), self.dropout > 0, bool(self.input_norm))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What every configuration of a sweep shares: steps, batch and the optimiser's
    remaining settings (its swept values come from each HeadConfig)."""

    steps: int = 300
    batch_size: int = 32
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    chunk_steps: int = 100  # host-side check and save between chunks


@dataclasses.dataclass
class FeatureTable:
    """One shared matrix of features: the posts (with their folds) and the web images
    (``fold`` -1: they always train).

    Both engines choose rows only through :meth:`training_rows` and
    :meth:`validation_rows`, so a subclass may give ``HeadConfig.fold`` another meaning
    (``drugjax.evaluation.protocol.CrossValidationTable``: pairs of held-out folds)."""

    features: np.ndarray  # (N, D) float32
    kinds: np.ndarray  # (N,) int32
    folds: np.ndarray  # (N,) int32

    @classmethod
    def from_cache(cls, features: dict, sources: Sequence[str]) -> "FeatureTable":
        """From :func:`drugjax.training.features.extract_features`' output, in the
        order the ordinary loop concatenates training sources (``data.sources``)."""
        parts = [features[name] for name in sources]
        folds = [p["fold"] if name == "posts" else np.full(len(p["kind"]), -1, np.int32)
                 for name, p in zip(sources, parts)]
        return cls(np.concatenate([p["features"] for p in parts]).astype(np.float32),
                   np.concatenate([p["kind"] for p in parts]).astype(np.int32), np.concatenate(folds).astype(np.int32))

    def training_rows(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.folds != fold)

    def validation_rows(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.folds == fold)


def _optim(schedule: Schedule, config: HeadConfig | dict) -> OptimConfig:
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
    return dataclasses.replace(schedule.optim, learning_rate=get("learning_rate"), decay=get("decay"),
                               weight_decay=get("weight_decay"))


def _model(config: HeadConfig, dropout_rate: Any = None, **kwargs) -> MultitaskHeads:
    """The heads of ``config``, with its dropout rate or ``dropout_rate`` (a traced one)."""
    rate = config.dropout if dropout_rate is None else dropout_rate
    return MultitaskHeads(hidden=tuple(config.hidden), dropout_rate=rate, tasks=tuple(config.tasks),
                          input_norm=config.input_norm, **kwargs)


def _keys(seed: int) -> tuple[jax.Array, jax.Array]:
    # As train_and_evaluate draws them: (init_key, state_key) from the seed.
    init_key, state_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, state_key


def _batch_rows(table: FeatureTable, config: HeadConfig, schedule: Schedule) -> np.ndarray:
    """(steps, batch) rows of ``table`` this configuration trains on, in order."""
    rows = table.training_rows(config.fold)
    if len(rows) < schedule.batch_size:
        raise ConfigError(f"fold {config.fold}: {len(rows)} training rows are fewer than one batch of "
                          f"{schedule.batch_size}; lower data.batch_size")
    order = ShuffledOrder(len(rows), schedule.batch_size, config.seed)
    return np.stack([rows[order.rows(t)] for t in range(schedule.steps)]).astype(np.int32)


def _validation_metrics(table: FeatureTable, config: HeadConfig, probs: np.ndarray) -> dict[str, float] | None:
    """Drug-head metrics of one configuration's probabilities over every row (None when
    the configuration diverged and its probabilities are not numbers)."""
    rows = table.validation_rows(config.fold)
    drug = list(config.tasks).index("drug")
    if not np.all(np.isfinite(probs[rows, drug])):
        return None
    labels = (table.kinds[rows] == INSTAGRAM_POSITIVE).astype(int)
    return binary_metrics(labels, probs[rows, drug])


# --------------------------------------------------------------------------- loop engine
def train_alone(table: FeatureTable, config: HeadConfig, schedule: Schedule) -> dict[str, Any]:
    """One configuration through the ordinary train step (one device), as the loop
    engine runs it: ``{"params", "loss" (per step), "val", "probs" ((N, tasks) over
    every row)}``."""
    model = _model(config, dropout_axis_name=AXIS)  # as train.py builds the heads
    init_key, state_key = _keys(config.seed)
    sample = jnp.zeros((1, table.features.shape[1]), jnp.float32)
    variables = jax.jit(lambda k, x: model.init({"params": k, "dropout": k}, x, train=False))(init_key, sample)
    tx = make_optimizer(_optim(schedule, config), variables["params"], total_steps=schedule.steps)
    state = TrainState.create(apply_fn=model.apply, variables=dict(variables), tx=tx, rng=state_key)
    parallel = DataParallel("pmap", jax.local_devices()[:1])
    state = parallel.put_state(state)
    train_fn, _ = make_steps(parallel, relation_weight=config.relation_weight, tasks=config.tasks)
    losses = []
    for rows in _batch_rows(table, config, schedule):
        batch = {"x": table.features[rows][None], "kind": table.kinds[rows][None], "valid": np.ones((1, len(rows)), bool)}
        state, metrics = train_fn(state, batch)
        losses.append(metrics["loss"])
    probs = np.asarray(jax.jit(lambda p, x: jax.nn.sigmoid(model.apply({"params": p}, x)))(state.params, table.features))
    return {"params": jax.device_get(state.params), "loss": np.asarray(jax.device_get(losses), np.float32),
            "val": _validation_metrics(table, config, probs), "probs": probs}


# --------------------------------------------------------------------------- vmap engine
class _Program:
    """The compiled programs of one group (one model shape): init, a chunk of steps, eval."""

    def __init__(self, config: HeadConfig, schedule: Schedule, features_dim: int, devices: Sequence[jax.Device]):
        self.config = config  # the group's shape; each configuration's dropout rate is vmapped
        self.model = _model(config)
        self.schedule = schedule
        self.features_dim = features_dim
        self.task_index = tuple(TASKS.index(t) for t in config.tasks)
        self.mesh = jax.sharding.Mesh(np.asarray(devices), ("config",))
        self.sharded = NamedSharding(self.mesh, P("config"))
        self.replicated = NamedSharding(self.mesh, P())
        self.init = jax.jit(jax.vmap(self._init_one, in_axes=(0, 0, 0)))
        self.chunk = jax.jit(jax.vmap(self._chunk_one, in_axes=(0, 0, 0, None, None)))
        self.predict = jax.jit(jax.vmap(
            lambda params, x: jax.nn.sigmoid(self.model.apply({"params": params}, x)), in_axes=(0, None)))

    def _tx(self, hyper: dict, params: Any):
        return make_optimizer(_optim(self.schedule, hyper), params, total_steps=self.schedule.steps)

    def _init_one(self, hyper: dict, init_key: jax.Array, state_key: jax.Array) -> dict:
        sample = jnp.zeros((1, self.features_dim), jnp.float32)
        params = self.model.init({"params": init_key, "dropout": init_key}, sample, train=False)["params"]
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": self._tx(hyper, params).init(params),
                "rng": state_key}

    def _chunk_one(self, carry: dict, hyper: dict, rows: jax.Array, features: jax.Array, kinds: jax.Array):
        rate = hyper["dropout"] if self.config.dropout > 0 else 0.0
        model = _model(self.config, rate, global_dropout=True)
        state = TrainState(step=carry["step"], params=carry["params"], batch_stats={}, opt_state=carry["opt_state"],
                           rng=carry["rng"], apply_fn=model.apply, tx=self._tx(hyper, carry["params"]))

        def step(state, batch_rows):
            batch = {"x": features[batch_rows], "kind": kinds[batch_rows]}
            state, metrics = train_step(state, batch, relation_weight=hyper["relation_weight"],
                                        task_index=self.task_index, axis_name=None)
            return state, metrics["loss"]

        state, losses = jax.lax.scan(step, state, rows)
        return {"step": state.step, "params": state.params, "opt_state": state.opt_state, "rng": state.rng}, losses


# Programs kept for the next call of the same shape and schedule (a search trains one
# round after another): jit caches its compilations with the function objects, so a new
# _Program would trace and compile again. A few, oldest dropped first.
_PROGRAMS: dict[str, _Program] = {}
_KEEP_PROGRAMS = 8


def _program(config: HeadConfig, schedule: Schedule, features_dim: int, devices: Sequence[jax.Device]) -> _Program:
    key = digest_json({"shape": config.program_key(), "schedule": dataclasses.asdict(schedule), "dim": features_dim,
                       "devices": [d.id for d in devices]})
    if key not in _PROGRAMS:
        if len(_PROGRAMS) >= _KEEP_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = _Program(config, schedule, features_dim, devices)
    return _PROGRAMS[key]


def _bytes_per_config(program: _Program, hyper_example: dict) -> int:
    shapes = jax.eval_shape(program._init_one, hyper_example, jax.random.PRNGKey(0), jax.random.PRNGKey(0))
    state = sum(np.prod(s.shape) * s.dtype.itemsize for s in jax.tree.leaves(shapes))
    # the state, its gradient and update, the new state, and the per-step batch rows
    return int(4 * state + program.schedule.steps * program.schedule.batch_size * 4)


def memory_budget_bytes() -> int:
    """A quarter of the device's memory (of the host's RAM on CPU): room for XLA's
    temporaries and the features."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) // 4
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 4


class _PartState:
    """A part's carry and losses, saved between chunks so a killed sweep resumes."""

    def __init__(self, path: Path | None, key: str):
        self.path, self.key = path, key

    def load(self, target: dict) -> tuple[dict, np.ndarray, int] | None:
        if self.path is None or not self.path.exists():
            return None
        saved = flax.serialization.msgpack_restore(self.path.read_bytes())
        if saved.get("key") != self.key:
            return None  # another sweep's part: this one starts afresh
        carry = flax.serialization.from_state_dict(target, saved["carry"])
        return carry, np.array(saved["losses"]), int(saved["done"])  # a writable copy

    def save(self, carry: dict, losses: np.ndarray, done: int) -> None:
        if self.path is None:
            return
        blob = flax.serialization.msgpack_serialize(
            {"key": self.key, "carry": flax.serialization.to_state_dict(jax.device_get(carry)), "losses": losses,
             "done": done})
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(self.path)  # atomic: a kill leaves the previous chunk's state


def _train_part(program: _Program, table: FeatureTable, configs: list[HeadConfig], state_file: _PartState,
                features: jax.Array, kinds: jax.Array) -> tuple[np.ndarray, np.ndarray, Any]:
    """Train one part (configurations of one group that fit together): per-step losses
    (K, steps), the probabilities (K, N, tasks) over every row, and the parameters."""
    schedule, devices = program.schedule, program.mesh.devices.size
    padded = configs + [configs[-1]] * (-len(configs) % devices)  # the config axis splits evenly
    hyper = {k: jnp.asarray([getattr(c, k) for c in padded], jnp.float32) for k in _SWEPT}
    keys = [_keys(c.seed) for c in padded]
    init_keys, state_keys = jnp.stack([k[0] for k in keys]), jnp.stack([k[1] for k in keys])
    rows = np.stack([_batch_rows(table, c, schedule) for c in padded])
    hyper, init_keys, state_keys = jax.device_put((hyper, init_keys, state_keys), program.sharded)
    carry = program.init(hyper, init_keys, state_keys)
    losses, done = np.zeros((len(padded), schedule.steps), np.float32), 0
    resumed = state_file.load(jax.device_get(carry))
    if resumed is not None:
        carry, losses, done = resumed
        carry = jax.device_put(carry, program.sharded)
        log.info("sweep part resumed at step %d", done)
    with Progress(schedule.steps, f"training {len(configs)} configurations together", unit="steps") as bar:
        bar.update(done)
        while done < schedule.steps:
            stop = min(done + schedule.chunk_steps, schedule.steps)
            chunk_rows = jax.device_put(rows[:, done:stop], program.sharded)
            carry, chunk_losses = program.chunk(carry, hyper, chunk_rows, features, kinds)
            losses[:, done:stop] = np.asarray(chunk_losses)
            bar.update(stop - done)
            done = stop
            state_file.save(carry, losses, done)
    probs = np.asarray(program.predict(carry["params"], features))
    params = jax.tree.map(lambda a: np.asarray(a)[: len(configs)], jax.device_get(carry["params"]))
    return losses[: len(configs)], probs[: len(configs)], params


def _groups(configs: Sequence[HeadConfig]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(config.program_key(), []).append(i)
    return groups


def train_sweep(
    table: FeatureTable,
    configs: Sequence[HeadConfig],
    schedule: Schedule,
    *,
    engine: str = "vmap",
    workdir: str | Path | None = None,
    devices: Sequence[jax.Device] | None = None,
    max_part: int | None = None,
    keep_params: bool = False,
    keep_predictions: bool = False,
) -> list[dict[str, Any]]:
    """Train every configuration; per configuration ``{"config", "loss", "val",
    "diverged"}`` (and ``"params"`` with ``keep_params``, ``"drug_probability"`` with
    ``keep_predictions``) in the order given.

    Args:
      table: the shared features (posts with folds, web images).
      configs: the trainings.
      schedule: steps, batch size and the optimiser settings they share.
      engine: ``vmap`` (one program per group) or ``loop`` (the ordinary step, one
        configuration after another: for comparison and debugging).
      workdir: where the vmap engine saves its state between chunks (None: nowhere).
      devices: the configuration axis is sharded over these (default: all local).
      max_part: at most this many configurations per compiled part (default: what
        :func:`memory_budget_bytes` allows).
      keep_params: also return each configuration's trained parameters.
      keep_predictions: also return each configuration's drug-head probability for
        every row of ``table`` ((N,) float32; NaN where it diverged), e.g. to score each
        fold's posts with the model of that fold (out-of-fold predictions).
    """
    if engine not in ENGINES:
        raise ValueError(f"sweep.engine must be one of {ENGINES}, got {engine!r}")
    if engine == "loop":
        alone = [train_alone(table, c, schedule) for c in configs]
        return [_result(c, loss=a["loss"], val=a["val"], params=a["params"] if keep_params else None,
                        probs=a["probs"] if keep_predictions else None)
                for c, a in zip(configs, alone)]
    devices = list(devices or jax.local_devices())
    workdir = None if workdir is None else Path(workdir)
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    results: list[dict | None] = [None] * len(configs)
    features = jax.device_put(jnp.asarray(table.features), NamedSharding(jax.sharding.Mesh(np.asarray(devices), ("config",)), P()))
    kinds = jax.device_put(jnp.asarray(table.kinds), features.sharding)
    for group, members in _groups(configs).items():
        program = _program(configs[members[0]], schedule, table.features.shape[1], devices)
        example = {k: jnp.float32(getattr(configs[members[0]], k)) for k in _SWEPT}
        fit = max(1, memory_budget_bytes() // _bytes_per_config(program, example))
        size = max(1, min(max_part or fit, fit))
        size = max(len(devices), size - size % len(devices))
        for start in range(0, len(members), size):
            part = [configs[i] for i in members[start: start + size]]
            key = digest_json({"configs": [dataclasses.asdict(c) for c in part],
                               "schedule": dataclasses.asdict(schedule), "rows": table.features.shape})
            state_file = _PartState(None if workdir is None else workdir / f"part-{key}.msgpack", key)
            t0 = time.perf_counter()
            losses, probs, params = _train_part(program, table, part, state_file, features, kinds)
            log.info("trained %d configurations of %s in %.1f s", len(part), group, time.perf_counter() - t0)
            for offset, config in enumerate(part):
                results[members[start + offset]] = _result(
                    config, loss=losses[offset], val=_validation_metrics(table, config, probs[offset]),
                    params=jax.tree.map(lambda a: a[offset], params) if keep_params else None,
                    probs=probs[offset] if keep_predictions else None)
    return results


def _result(config: HeadConfig, *, loss: np.ndarray, val: dict | None, params: Any = None,
            probs: np.ndarray | None = None) -> dict[str, Any]:
    diverged = val is None or not bool(np.all(np.isfinite(loss)))
    if diverged:
        log.warning("configuration %s diverged (non-finite loss); its metrics are not shown as results",
                    json.dumps(dataclasses.asdict(config)))
    result = {"config": config, "loss": loss, "val": None if diverged else val, "diverged": diverged}
    if params is not None:
        result["params"] = params
    if probs is not None:
        drug = np.asarray(probs)[:, list(config.tasks).index("drug")].astype(np.float32)
        result["drug_probability"] = np.full_like(drug, np.nan) if diverged else drug
    return result
