"""Shapes, parameter counts and freezing behaviour of the trunk, heads and end-to-end model."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from drugjax.models.heads import EndToEnd, MultitaskHeads, single_task_mlp
from drugjax.models.tiny import TinyBackbone
from drugjax.training.config import OptimConfig
from drugjax.training.optim import make_optimizer, param_labels


def test_multitask_heads_shapes_and_paper_sizes():
    model = MultitaskHeads()
    x = jnp.ones((5, 1024))
    v = model.init(jax.random.key(0), x)
    assert model.apply(v, x).shape == (5, 4)
    p = v["params"]
    assert set(p) == {"trunk_0", "trunk_1", "head_drug", "head_weed", "head_pills", "head_syrup"}
    assert p["trunk_0"]["kernel"].shape == (1024, 256)
    assert p["trunk_1"]["kernel"].shape == (256, 256)
    n = sum(a.size for a in jax.tree.leaves(p))
    assert n == (1024 * 256 + 256) + (256 * 256 + 256) + 4 * (256 + 1)


def test_input_norm_normalises_each_feature_vector_before_the_trunk():
    # Features pooled from several blocks come at different scales; with input_norm the
    # heads see each vector centred and scaled (a LayerNorm with its own parameters).
    model = MultitaskHeads(hidden=(8,), input_norm=True)
    x = jax.random.normal(jax.random.key(0), (4, 12)) * 3 + 1
    v = model.init(jax.random.key(1), x)
    assert set(v["params"]["input_norm"]) == {"scale", "bias"}
    np.testing.assert_allclose(model.apply(v, x), model.apply(v, 5 * x - 2), rtol=1e-4, atol=1e-4)
    plain = MultitaskHeads(hidden=(8,))
    assert "input_norm" not in plain.init(jax.random.key(1), x)["params"]
    assert not np.allclose(plain.apply(plain.init(jax.random.key(1), x), x),
                           plain.apply(plain.init(jax.random.key(1), x), 5 * x - 2))


def test_configurable_widths_dropout_and_single_task():
    m = MultitaskHeads(hidden=(8,), dropout_rate=0.5, tasks=("drug", "pills"))
    x = jnp.ones((3, 6))
    v = m.init(jax.random.key(0), x)
    assert m.apply(v, x).shape == (3, 2)
    a = m.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = m.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)  # dropout is active while training
    np.testing.assert_array_equal(m.apply(v, x), m.apply(v, x))  # and off at eval
    mlp = single_task_mlp()
    assert mlp.apply(mlp.init(jax.random.key(0), jnp.ones((2, 1024))), jnp.ones((2, 1024))).shape == (2, 1)
    with pytest.raises(ValueError, match="subset"):
        MultitaskHeads(tasks=("cocaine",)).init(jax.random.key(0), x)


def test_bfloat16_compute_keeps_float32_params_and_logits():
    m = MultitaskHeads(hidden=(8, 8), dtype=jnp.bfloat16)
    v = m.init(jax.random.key(0), jnp.ones((2, 6)))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(v))
    assert m.apply(v, jnp.ones((2, 6))).dtype == jnp.float32


def _e2e(**kw):
    model = EndToEnd(backbone=TinyBackbone(features=8), heads=MultitaskHeads(hidden=(8,)), **kw)
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
    return model, jax.jit(model.init)(jax.random.key(1), x), x


@pytest.mark.parametrize("trainable", [True, False])
def test_end_to_end_freezing(trainable):
    model, v, x = _e2e(freeze_backbone=not trainable)
    assert set(v["params"]) == {"backbone", "heads"}
    assert model.apply(v, x).shape == (4, 4)

    def loss(p):
        out, _ = model.apply({"params": p, "batch_stats": v["batch_stats"]}, x, train=True, mutable=["batch_stats"])
        return jnp.sum(out**2)

    g = jax.jit(jax.grad(loss))(v["params"])  # jitted: eager grads compile op by op
    bb_norm = optax.tree.norm(g["backbone"])
    assert (bb_norm > 0) == trainable
    assert optax.tree.norm(g["heads"]) > 0
    tx = make_optimizer(OptimConfig(warmup_steps=0, weight_decay=0.1), v["params"], total_steps=10,
                        backbone_trainable=trainable, backbone_lr_factor=0.5)
    updates, _ = jax.jit(tx.update)(g, tx.init(v["params"]), v["params"])
    # A frozen backbone gets no update at all, not even weight decay.
    assert (optax.tree.norm(updates["backbone"]) > 0) == trainable


def test_frozen_batchnorm_keeps_running_statistics():
    model, v, x = _e2e(train_bn=False)
    _, new = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
    for a, b in zip(jax.tree.leaves(v["batch_stats"]), jax.tree.leaves(new["batch_stats"])):
        np.testing.assert_array_equal(a, b)


def test_backbone_has_its_own_learning_rate():
    _, v, _ = _e2e()
    labels = param_labels(v["params"])
    assert set(jax.tree.leaves(labels["backbone"])) == {"backbone"}
    assert set(jax.tree.leaves(labels["heads"])) == {"heads"}
    ones = jax.tree.map(jnp.ones_like, v["params"])
    cfg = OptimConfig(name="sgd", warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=0.0, learning_rate=1.0)
    tx = make_optimizer(cfg, v["params"], total_steps=10, backbone_lr_factor=0.1)
    up, _ = jax.jit(tx.update)(ones, tx.init(v["params"]), v["params"])
    np.testing.assert_allclose(jax.tree.leaves(up["heads"])[0], -1.0)
    np.testing.assert_allclose(jax.tree.leaves(up["backbone"])[0], -0.1, rtol=1e-6)


def test_global_batch_dropout_slices_the_global_mask():
    """4 'devices' (vmap over an axis) with 3 rows each drop exactly what flax's Dropout
    drops on the 12 rows with the same key; and it does drop."""
    import flax.linen as nn

    from drugjax.models.heads import GLOBAL_DROPOUT_RNG, GlobalBatchDropout

    x = jnp.arange(1, 12 * 5 + 1, dtype=jnp.float32).reshape(12, 5)
    key = jax.random.key(3)
    # make_rng derives the same key from the same stream and module path in both
    one = nn.Dropout(0.4, rng_collection=GLOBAL_DROPOUT_RNG).apply({}, x, deterministic=False,
                                                                    rngs={GLOBAL_DROPOUT_RNG: key})
    sliced = jax.vmap(
        lambda xs: GlobalBatchDropout(0.4, "data").apply({}, xs, deterministic=False, rngs={GLOBAL_DROPOUT_RNG: key}),
        axis_name="data",
    )(x.reshape(4, 3, 5))
    np.testing.assert_array_equal(np.asarray(sliced).reshape(12, 5), np.asarray(one))
    dropped = np.asarray(sliced) == 0
    assert 0.2 < dropped.mean() < 0.6
    np.testing.assert_allclose(np.asarray(sliced)[~dropped], np.asarray(x).reshape(4, 3, 5)[~dropped] / 0.6, rtol=1e-6)
    assert np.array_equal(GlobalBatchDropout(0.4, "data").apply({}, x, deterministic=True), x)
