"""The optimiser: RMSprop (the paper's) with warm-up + cosine schedule, decoupled weight
decay, global-norm clipping, and a separate learning rate (or none) for the backbone."""

from __future__ import annotations

from typing import Any

import jax
import optax

from drugjax.training.config import OptimConfig

OPTIMIZERS = ("rmsprop", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")


def make_schedule(cfg: OptimConfig, total_steps: int, scale: float = 1.0) -> optax.Schedule:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to
    ``learning_rate * end_lr_factor`` at ``total_steps`` (or constant)."""
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    peak = cfg.learning_rate * scale
    warmup = max(0, min(int(cfg.warmup_steps), int(total_steps) - 1))
    if cfg.schedule == "constant":
        if warmup == 0:
            return optax.constant_schedule(peak)
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup]
        )
    # The shape from 0 to 1, scaled by the peak: optax's own schedule branches on the
    # peak's value in Python, which a learning rate swept under vmap (a tracer) cannot do.
    shape = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=1.0,
        warmup_steps=warmup,
        decay_steps=max(int(total_steps), warmup + 1),
        end_value=cfg.end_lr_factor,
    )
    return lambda count: peak * shape(count)


def _base(cfg: OptimConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    # Decay is decoupled (added after the adaptive scaling, before the learning rate, as
    # in AdamW) and applies to kernels only: biases and BatchNorm scales are not shrunk.
    decay = optax.add_decayed_weights(
        cfg.weight_decay, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
    )
    if cfg.name == "rmsprop":
        scale = (
            optax.scale_by_stddev(decay=cfg.decay, eps=cfg.eps)
            if cfg.centered
            else optax.scale_by_rms(decay=cfg.decay, eps=cfg.eps)
        )
        parts = [scale, decay, optax.scale_by_learning_rate(schedule)]
        if cfg.momentum:
            parts.append(optax.trace(decay=cfg.momentum))
        return optax.chain(*parts)
    if cfg.name == "adamw":
        return optax.chain(optax.scale_by_adam(eps=cfg.eps), decay, optax.scale_by_learning_rate(schedule))
    if cfg.name == "sgd":
        parts = [decay, optax.scale_by_learning_rate(schedule)]
        if cfg.momentum:
            parts.append(optax.trace(decay=cfg.momentum))
        return optax.chain(*parts)
    raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.name!r}")


def param_labels(params: Any, *, backbone_trainable: bool = True) -> Any:
    """``"backbone"`` (or ``"frozen"``) for parameters under a top-level ``backbone``
    key, ``"heads"`` for the rest."""

    def label(path, _):
        top = getattr(path[0], "key", None)
        if top == "backbone":
            return "backbone" if backbone_trainable else "frozen"
        return "heads"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(
    cfg: OptimConfig,
    params: Any,
    *,
    total_steps: int,
    backbone_trainable: bool = True,
    backbone_lr_factor: float = 1.0,
) -> optax.GradientTransformation:
    """The training optimiser for ``params``.

    Gradients are clipped by their global norm over all trainable parameters, then the
    backbone and the heads each get their own chain (the backbone's learning rate is
    ``learning_rate * backbone_lr_factor``); a frozen backbone gets zero updates and no
    optimiser state.
    """
    if cfg.clip_norm < 0:
        raise ValueError(f"optim.clip_norm must be >= 0 (0 disables clipping), got {cfg.clip_norm}")
    transforms = {
        "heads": _base(cfg, make_schedule(cfg, total_steps)),
        "backbone": _base(cfg, make_schedule(cfg, total_steps, backbone_lr_factor)),
        "frozen": optax.set_to_zero(),
    }
    labels = param_labels(params, backbone_trainable=backbone_trainable)
    parts = []
    if cfg.clip_norm > 0:
        # Frozen parameters have zero gradients (stop_gradient), so they do not inflate
        # the global norm.
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(optax.multi_transform(transforms, labels))
    return optax.chain(*parts)
