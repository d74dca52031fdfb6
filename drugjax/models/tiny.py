"""A tiny stand-in backbone for smoke runs and tests of the training machinery."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class TinyBackbone(nn.Module):
    """A two-convolution stand-in for Inception-v1 (``model.backbone.name=tiny``).

    Same contract as ``InceptionV1(num_classes=None)`` — NHWC images in, ``(N, features)``
    out, BatchNorm with ``batch_stats`` — at a tiny fraction of the cost, for smoke runs
    and tests of the training machinery. Not a model to report results with.

    ``bn_axis_name`` synchronises BatchNorm's training-mode statistics over that mapped
    axis, as ``InceptionV1(bn_axis_name=...)`` does (flax's ``BatchNorm(axis_name=...)``).
    """

    features: int = 32
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = x.astype(self.dtype)
        for i, width in enumerate((8, self.features)):
            x = nn.Conv(width, (3, 3), strides=(2, 2), use_bias=False, name=f"conv{i}", **kw)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-3, axis_name=self.bn_axis_name,
                             name=f"bn{i}", **kw)(x)
            x = nn.relu(x)
        return jnp.mean(x, axis=(1, 2))
