"""The train state: parameters, BatchNorm statistics, optimiser state, step and RNG."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
    """Everything a training step reads and writes.

    ``rng`` is the run's base key; the step's dropout key is derived from it, the step
    number and the device index (``fold_in``), so a resumed run draws the same numbers
    as an uninterrupted one without having to carry a split key forward.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, apply_fn: Callable, variables: dict, tx: optax.GradientTransformation, rng: jax.Array) -> "TrainState":
        """A fresh state at step 0 from ``{"params": ..., "batch_stats": ...}``."""
        params = variables["params"]
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            rng=rng,
            apply_fn=apply_fn,
            tx=tx,
        )

    def variables(self) -> dict:
        """The model variables for ``apply_fn``."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}

    def to_tree(self) -> dict:
        """The checkpointed part of the state, as a plain pytree."""
        return {
            "step": self.step,
            "params": self.params,
            "batch_stats": self.batch_stats,
            "opt_state": self.opt_state,
            "rng": self.rng,
        }

    def from_tree(self, tree: dict) -> "TrainState":
        """This state with the values of a (restored) :meth:`to_tree` pytree."""
        return self.replace(**{k: tree[k] for k in ("step", "params", "batch_stats", "opt_state", "rng")})
