"""Per-device train and eval steps, and the two data-parallel wrappers around them.

The steps are written for one device holding its share of the global batch, with an
``axis_name`` over which gradients, metrics and BatchNorm statistics are averaged with
``lax.pmean``. :class:`DataParallel` runs them either with ``jax.pmap`` (state passed
unreplicated with ``in_axes=None`` and returned with ``out_axes=None``) or with
``jax.jit(jax.shard_map(...))`` over a one-axis ``data`` mesh.

The shard_map pitfall: with shard_map's varying-manual-axes typing, the
gradient of a loss computed from device-varying data with respect to *replicated*
parameters is already summed over devices by the transpose rule, so a further ``pmean``
makes it n times too large. The step therefore first casts the parameters to "varying"
(``lax.pcast(..., to="varying")``): each device then differentiates its own loss, and the
explicit ``pmean`` gives the gradient of the global mean loss under both wrappers
(checked against one device in tests/test_train_parallel.py).

BatchNorm in training mode normalises with each device's own batch statistics (as in
Flax's ImageNet example) unless the model synchronises them (``bn_axis_name=AXIS`` on
``InceptionV1``/``TinyBackbone``, config ``parallel.sync_batch_norm``): then its layers
average the batch mean and variance over ``AXIS`` with ``lax.pmean`` inside this step,
and D devices compute what one device computes with the whole batch. Either way the
updated running averages are averaged across devices below (a no-op up to rounding when
synchronised: every device already holds the same ones). The gradient needs no special
care: the transpose of the model's ``pmean`` carries each device's share of the
cross-device terms back to the device that produced the input, under pmap and under
shard_map with the parameters cast to varying (tests/test_train_parallel.py checks both
against one device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from drugjax.runtime import xla_cpu
from drugjax.losses import masked_bce_terms
from drugjax.models.heads import GLOBAL_DROPOUT_RNG
from drugjax.tasks import TASKS, encode_labels
from drugjax.training.state import TrainState

AXIS = "data"


def _targets(kind: jax.Array, valid: jax.Array, relation_weight: float, task_index: tuple[int, ...]):
    targets, weights = encode_labels(kind, relation_weight)
    idx = jnp.asarray(task_index)
    weights = weights[:, idx] * valid[:, None].astype(jnp.float32)
    return targets[:, idx], weights


def loss_terms(logits: jax.Array, kind: jax.Array, valid: jax.Array, *, relation_weight: float,
               task_index: tuple[int, ...], softmax: bool = False) -> jax.Array:
    """Per-example, per-task loss terms ``(B, T)``: the masked binary cross-entropy of the
    task heads (Eq. 1), or with ``softmax`` the cross-entropy of a classifier over classes
    (the pretext pre-training; ``kind`` is then the class, and ``T`` is 1)."""
    if softmax:
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), kind)
        return (ce * valid.astype(jnp.float32))[:, None]
    targets, weights = _targets(kind, valid, relation_weight, task_index)
    return masked_bce_terms(logits, targets, weights)


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    relation_weight: float,
    task_index: tuple[int, ...] = (0, 1, 2, 3),
    axis_name: str | None = AXIS,
    softmax: bool = False,
) -> tuple[TrainState, dict[str, Any]]:
    """One optimisation step on this device's share of the batch.

    ``batch`` holds ``x`` (images or features), ``kind`` and ``valid`` for the local
    examples. Returns the new state (identical on every device) and metrics: the mean
    loss, the per-task loss terms, the gradient norm and, for the NaN guard, which
    gradient leaves are finite. ``axis_name=None``: the whole batch is here (no device
    axis; the sweep engine vmaps this over configurations), computed as device 0 of one.
    """
    x, kind = batch["x"], batch["kind"]
    valid = batch.get("valid", jnp.ones(kind.shape, bool))
    n = x.shape[0]
    terms_of = partial(loss_terms, kind=kind, valid=valid, relation_weight=relation_weight,
                       task_index=task_index, softmax=softmax)
    device = 0 if axis_name is None else lax.axis_index(axis_name)
    step_key = jax.random.fold_in(state.rng, state.step)
    # flax Dropout gets a key per device; GlobalBatchDropout the step's key, the same on
    # every device, from which it draws the global batch's mask.
    rngs = {"dropout": jax.random.fold_in(step_key, device), GLOBAL_DROPOUT_RNG: step_key}
    has_bn = bool(jax.tree.leaves(state.batch_stats))
    # See the module docstring: differentiate the local loss w.r.t. device-varying
    # parameters, then average explicitly.
    params = state.params if axis_name is None else lax.pcast(state.params, axis_name, to="varying")
    mean = (lambda tree: tree) if axis_name is None else (lambda tree: lax.pmean(tree, axis_name))

    def loss_fn(p):
        variables = {"params": p}
        if has_bn:
            variables["batch_stats"] = state.batch_stats
            logits, updated = state.apply_fn(
                variables, x, train=True, mutable=["batch_stats"], rngs=rngs
            )
            new_bs = updated.get("batch_stats", state.batch_stats)
        else:
            logits = state.apply_fn(variables, x, train=True, rngs=rngs)
            new_bs = state.batch_stats
        terms = terms_of(logits)
        return jnp.sum(terms) / n, (jnp.sum(terms, axis=0) / n, new_bs)

    (loss, (task_loss, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    grads, loss, task_loss = mean(grads), mean(loss), mean(task_loss)
    if has_bn:
        new_bs = mean(new_bs)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        batch_stats=new_bs,
        opt_state=opt_state,
    )
    metrics = {
        "loss": loss,
        "task_loss": task_loss,
        "grad_norm": optax.tree.norm(grads),
        "grad_finite": jax.tree.map(lambda g: jnp.all(jnp.isfinite(g)), grads),
    }
    return new_state, metrics


def eval_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    relation_weight: float,
    task_index: tuple[int, ...] = (0, 1, 2, 3),
    softmax: bool = False,
) -> dict[str, jax.Array]:
    """Per-example probabilities ``(B, T)`` (of the classes with ``softmax``) and summed
    loss terms ``(B,)`` (padding examples get weight 0)."""
    x, kind = batch["x"], batch["kind"]
    valid = batch.get("valid", jnp.ones(kind.shape, bool))
    logits = state.apply_fn(state.variables(), x, train=False)
    terms = loss_terms(logits, kind, valid, relation_weight=relation_weight, task_index=task_index, softmax=softmax)
    return {
        "prob": jax.nn.softmax(logits.astype(jnp.float32)) if softmax else jax.nn.sigmoid(logits),
        "loss": jnp.sum(terms, axis=-1),
    }


class DataParallel:
    """Runs per-device steps over ``devices`` with ``pmap`` or ``jit(shard_map)``.

    Batches come in as numpy arrays of shape ``(D, B, ...)`` (D = number of devices);
    the state goes in and comes out unreplicated (one logical copy).

    Several hosts (``pmap`` over all devices, ``devices=None``): each process passes only
    its local devices' ``(D_local, B, ...)`` rows of the global batch (pmap's multi-host
    convention, so ``put_batch`` leaves them as they are); pmap numbers the devices
    process by process, so process 0's rows come first, as in the loaders' host split
    (``drugjax.data.pipeline.host_rows``). The state comes back as arrays replicated over
    each host's own devices (``Checkpoints.save`` makes them global for orbax). Checked
    with two processes against one (tests/test_multiprocess.py).
    """

    MODES = ("pmap", "shard_map")

    def __init__(self, mode: str = "pmap", devices: Sequence[jax.Device] | None = None):
        if mode not in self.MODES:
            raise ValueError(f"parallel.mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        # pmap over all devices (devices=None) is what spans several hosts; an explicit
        # list restricts it to those local devices.
        self._pmap_devices = None if devices is None else list(devices)
        self.devices = list(devices if devices is not None else jax.local_devices())
        self.num_devices = len(self.devices)
        mesh_devices = self.devices if devices is not None or mode == "shard_map" else jax.devices()
        self.mesh = jax.sharding.Mesh(np.asarray(mesh_devices), (AXIS,))
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P(AXIS))

    def put_state(self, state: TrainState) -> TrainState:
        """Place a host/single-device state where the wrapped steps expect it.

        Also for pmap: its ``out_axes=None`` outputs are replicated over a ``data`` mesh,
        and a first input placed otherwise makes the second step compile the whole step
        again (a minute for Inception-v1 on CPU).
        """
        return jax.device_put(state, self._replicated)

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Place a ``(D, B, ...)`` host batch for the wrapped steps."""
        if self.mode == "pmap":
            return batch
        out = {}
        for k, v in batch.items():
            v = np.asarray(v)
            flat = v.reshape((v.shape[0] * v.shape[1],) + v.shape[2:])
            out[k] = jax.make_array_from_process_local_data(self._sharded, flat)
        return out

    def _pmap(self, fn: Callable, out_axes: Any) -> Callable:
        pmapped = jax.pmap(fn, axis_name=AXIS, in_axes=(None, 0), out_axes=out_axes, devices=self._pmap_devices)
        if jax.process_count() > 1:  # several hosts: pmap's own dispatch, as tested
            return pmapped
        return xla_cpu.compile_per_signature(pmapped)  # XLA:CPU's options; unchanged on GPUs

    def wrap_train(self, step_fn: Callable) -> Callable:
        """``step_fn(state, local_batch) -> (state, metrics)`` as a data-parallel step."""
        if self.mode == "pmap":
            return self._pmap(step_fn, out_axes=(None, None))
        return xla_cpu.jit(
            jax.shard_map(step_fn, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
        )

    def wrap_eval(self, eval_fn: Callable) -> Callable:
        """``eval_fn(state, local_batch) -> per-example outputs``, returned as ``(D, B, ...)``."""
        if self.mode == "pmap":
            return self._pmap(eval_fn, out_axes=0)
        fn = xla_cpu.jit(jax.shard_map(eval_fn, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS)))
        d = self.num_devices

        def run(state, batch):
            out = fn(state, batch)
            return jax.tree.map(lambda a: a.reshape((d, a.shape[0] // d) + a.shape[1:]), out)

        return run


def make_steps(
    parallel: DataParallel, *, relation_weight: float, tasks: Sequence[str] = TASKS, softmax: bool = False
) -> tuple[Callable, Callable]:
    """The wrapped (train_step, eval_step) for a model predicting ``tasks`` (or, with
    ``softmax``, for a classifier over classes)."""
    task_index = (0,) if softmax else tuple(TASKS.index(t) for t in tasks)
    train = partial(train_step, relation_weight=float(relation_weight), task_index=task_index, softmax=softmax)
    evaluate = partial(eval_step, relation_weight=float(relation_weight), task_index=task_index, softmax=softmax)
    return parallel.wrap_train(train), parallel.wrap_eval(evaluate)
