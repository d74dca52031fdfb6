"""The multitask trunk and heads of the paper (Fig. 3a) and the end-to-end image model.

* :class:`MultitaskHeads` — a shared trunk (by default two ``Dense(256)`` + ReLU, the
  paper's sizes) and one binary head per task, returning logits ``(N, len(tasks))`` in the
  order of ``tasks`` (``drugjax.tasks.TASKS`` by default). The paper speaks of "four
  softmax layers"; a two-way softmax is a sigmoid of one logit, so each head is a
  ``Dense(1)`` trained with the masked binary cross-entropy of Eq. 1.
* :func:`single_task_mlp` — Table 1's "MLP" baseline: the same trunk with the drug head
  only (trained on Instagram posts only).
* :class:`EndToEnd` — a backbone (Inception-v1) feeding the trunk and heads. The backbone
  can be frozen (its features get ``stop_gradient``; the optimiser also zeroes its
  updates, see ``drugjax.training.optim``) and its BatchNorm layers can be frozen (run
  with the running statistics even while training) independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from drugjax.tasks import TASKS

Dtype = Any

#: The rng stream of :class:`GlobalBatchDropout`: one key for the whole global batch, the
#: same on every device (``drugjax.training.steps.train_step`` provides it).
GLOBAL_DROPOUT_RNG = "dropout_global"


class GlobalBatchDropout(nn.Module):
    """Dropout with the mask of the global batch: each device draws the mask for all
    devices' rows from one shared key (the ``GLOBAL_DROPOUT_RNG`` stream) and keeps its
    own rows, those at ``lax.axis_index(axis_name)``. D devices with N/D rows each thus
    drop what one device with all N rows drops, which ``flax.linen.Dropout`` with a
    per-device key cannot give. The price is drawing D times as many random bits, which
    is nothing for the heads' (N, 256) activations.

    Must run inside ``pmap``/``shard_map`` over ``axis_name`` (every device holding the
    same number of rows) when not deterministic; ``axis_name=None``: the whole batch is
    here, as on device 0 of one. ``rate`` may be a traced scalar (the sweep engine vmaps
    it over configurations): a rate of 0 then keeps every value, as no dropout does.
    """

    rate: Any  # a float, or a traced scalar
    axis_name: str | None

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or (isinstance(self.rate, (int, float)) and self.rate == 0):
            return x
        keep_prob = 1.0 - self.rate
        n = x.shape[0]
        key = self.make_rng(GLOBAL_DROPOUT_RNG)
        if self.axis_name is None:
            keep = jax.random.bernoulli(key, keep_prob, x.shape)
        else:
            keep = jax.random.bernoulli(key, keep_prob, (n * jax.lax.axis_size(self.axis_name),) + x.shape[1:])
            keep = jax.lax.dynamic_slice_in_dim(keep, jax.lax.axis_index(self.axis_name) * n, n)
        # As flax.linen.Dropout computes it, so one device gives the same values.
        return jax.lax.select(keep, x / keep_prob, jnp.zeros_like(x))


class MultitaskHeads(nn.Module):
    """Shared trunk + one binary head per task, on ``(N, D)`` features.

    Attributes:
      hidden: widths of the shared trunk's Dense + ReLU layers.
      dropout_rate: dropout after every trunk layer while training (0 disables it); a
        traced scalar keeps the layers (the sweep engine vmaps the rate).
      dropout_axis_name: the data axis (``drugjax.training.steps.AXIS``) to draw the
        dropout masks for the global batch (:class:`GlobalBatchDropout`), so that any
        number of devices trains like one; None draws each device's mask from its own
        key (``flax.linen.Dropout``), unless ``global_dropout``.
      global_dropout: draw the masks as :class:`GlobalBatchDropout` does although there is
        no device axis (the whole batch is here): the sweep engine, so that a
        configuration it trains drops what train.py's model drops on one device.
      tasks: the task names, one head each; logits come in this order.
      input_norm: a LayerNorm over the features before the trunk (features concatenated
        from several backbone blocks come at different scales; docs/training.md).
      dtype: compute dtype (``jnp.bfloat16`` for mixed precision); logits are float32.
      param_dtype: parameter dtype (keep float32).
    """

    hidden: Sequence[int] = (256, 256)
    dropout_rate: Any = 0.0
    dropout_axis_name: str | None = None
    global_dropout: bool = False
    tasks: Sequence[str] = TASKS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    input_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"MultitaskHeads expects (N, D) features, got shape {x.shape}")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(self.tasks)}")
        x = x.astype(self.dtype)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.input_norm:
            x = nn.LayerNorm(name="input_norm", **kw)(x)
        dropout = not isinstance(self.dropout_rate, (int, float)) or self.dropout_rate > 0
        for i, width in enumerate(self.hidden):
            x = nn.relu(nn.Dense(int(width), name=f"trunk_{i}", **kw)(x))
            if dropout and (self.dropout_axis_name is not None or self.global_dropout):
                x = GlobalBatchDropout(self.dropout_rate, self.dropout_axis_name)(x, deterministic=not train)
            elif dropout:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        # One Dense(1) per task (rather than one Dense(T)) keeps each task's head a
        # separately named parameter group, as in the paper's figure, so heads can be
        # inspected, transferred or dropped one by one.
        logits = [nn.Dense(1, name=f"head_{t}", **kw)(x) for t in self.tasks]
        return jnp.concatenate(logits, axis=-1).astype(jnp.float32)


def single_task_mlp(
    hidden: Sequence[int] = (256, 256), dropout_rate: float = 0.0, dtype: Dtype = jnp.float32
) -> MultitaskHeads:
    """Table 1's single-task "MLP" baseline: the shared trunk with the drug head only."""
    return MultitaskHeads(hidden=tuple(hidden), dropout_rate=dropout_rate, tasks=("drug",), dtype=dtype)


class LinearClassifier(nn.Module):
    """One softmax layer over ``num_classes`` (logits): the pretext classifier on top of
    the backbone while it is pre-trained (``model.kind=classifier``)."""

    num_classes: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(features)


class EndToEnd(nn.Module):
    """Backbone -> trunk -> heads, trained end to end (or with parts frozen).

    Attributes:
      backbone: a module mapping NHWC images to ``(N, D)`` features, called as
        ``backbone(x, train=...)`` (``drugjax.models.InceptionV1(num_classes=None)``).
      heads: the trunk and heads (:class:`MultitaskHeads`).
      freeze_backbone: stop gradients at the features (the backbone's parameters stay
        as loaded; the optimiser must also leave them alone, which
        ``drugjax.training.optim.make_optimizer`` does).
      train_bn: run the backbone's BatchNorm in training mode (batch statistics, running
        averages updated) while training. False keeps the running statistics fixed —
        the usual choice when fine-tuning pretrained weights with small batches.
        Whether those batch statistics span all devices is the backbone's own setting
        (``bn_axis_name`` of ``InceptionV1`` and :class:`TinyBackbone`).

    Parameters live under ``{"backbone": ..., "heads": ...}``.
    """

    backbone: nn.Module
    heads: nn.Module
    freeze_backbone: bool = False
    train_bn: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        features = self.backbone(x, train=train and self.train_bn and not self.freeze_backbone)
        if self.freeze_backbone:
            features = jax.lax.stop_gradient(features)
        return self.heads(features, train=train)
