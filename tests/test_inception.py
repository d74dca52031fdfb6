"""InceptionV1 computes what torchvision's GoogLeNet computes.

The reference outputs come from the real torchvision (tests/fixtures/
make_googlenet_reference.py, committed fixture); torchvision is not needed here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from drugjax.runtime import xla_cpu
from drugjax.models import InceptionV1
from drugjax.models.weights import from_torchvision, to_torchvision

FIXTURES = Path(__file__).parent / "fixtures"


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_googlenet_reference",
                                                  FIXTURES / "make_googlenet_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maker = _load_maker()


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURES / "googlenet_reference.npz", allow_pickle=False) as f:
        ref = {k: f[k] for k in f.files}
    meta = json.loads(str(ref.pop("meta")))
    keys_shapes = [(k, tuple(s)) for k, s in meta["keys"]]
    state = maker.random_state_dict(keys_shapes, meta["seed"])
    for k in list(state):
        if f"stat/{k}" in ref:  # calibrated running statistics from torchvision
            state[k] = ref[f"stat/{k}"]
    return ref, from_torchvision(state)


def test_parameter_count():
    variables = jax.eval_shape(lambda: InceptionV1(num_classes=1000).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 6_624_904


@pytest.mark.parametrize("size", ["224", "97"])
def test_matches_torchvision(reference, size):
    ref, variables = reference
    x = jnp.asarray(maker.normalise(ref[f"images_{size}"]))
    # One compiled graph gives both: in eval mode the dropout's output is the pooled
    # 1024-d feature vector, the classifier's input.
    model = InceptionV1(num_classes=1000)
    logits, state = jax.jit(lambda v, x: model.apply(
        v, x, capture_intermediates=lambda mdl, _: isinstance(mdl, nn.Dropout),
        mutable=["intermediates"]))(variables, x)
    features = np.asarray(jax.tree.leaves(state["intermediates"])[0])
    logits = np.asarray(logits)

    want_f, want_l = ref[f"features_{size}"], ref[f"logits_{size}"]
    # The fixture must be sensitive: the two inputs give clearly different outputs, so a
    # shifted padding or a wrong pooling cannot hide under the tolerance.
    spread = np.linalg.norm(want_f[0] - want_f[1]) / np.linalg.norm(want_f[0])
    assert spread > 0.05, spread
    assert features.shape == want_f.shape and logits.shape == want_l.shape
    assert np.max(np.abs(features - want_f)) <= 5e-4
    assert np.max(np.abs(logits - want_l)) <= 1e-4


def _eval_outputs(model, variables, x):
    """(features, logits) of one eval forward: the dropout's input is the 1024-d feature."""
    logits, state = jax.jit(lambda v, x: model.apply(
        v, x, capture_intermediates=lambda mdl, _: isinstance(mdl, nn.Dropout),
        mutable=["intermediates"]))(variables, x)
    return np.asarray(jax.tree.leaves(state["intermediates"])[0]), np.asarray(logits)


@pytest.mark.parametrize("size", ["224", "97"])
def test_folded_batch_norm_matches_torchvision_and_unfolded(reference, size):
    # BatchNorm folded into the convolutions (the feature-extraction path) computes the
    # same function: within the fixture's tolerances of torchvision, and within float32
    # rounding of the unfolded eval forward on the same input.
    ref, variables = reference
    x = jnp.asarray(maker.normalise(ref[f"images_{size}"]))
    features, logits = _eval_outputs(InceptionV1(num_classes=1000, fold_batch_norm=True), variables, x)
    assert np.max(np.abs(features - ref[f"features_{size}"])) <= 5e-4
    assert np.max(np.abs(logits - ref[f"logits_{size}"])) <= 1e-4
    plain_f, plain_l = _eval_outputs(InceptionV1(num_classes=1000), variables, x)
    np.testing.assert_allclose(features, plain_f, rtol=1e-5, atol=1e-5 * np.max(np.abs(plain_f)))
    np.testing.assert_allclose(logits, plain_l, rtol=1e-5, atol=1e-5 * np.max(np.abs(plain_l)))


def test_folded_batch_norm_leaves_training_mode_alone(reference):
    # fold_batch_norm changes only train=False: one BasicConv2d in training mode gives
    # the same output and batch statistics with and without it.
    from drugjax.models.inception import BasicConv2d

    _, variables = reference
    conv1 = {c: variables[c]["conv1"] for c in ("params", "batch_stats")}
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
    outs = [BasicConv2d(64, 7, stride=2, padding=3, fold_batch_norm=fold).apply(
        conv1, x, train=True, mutable=["batch_stats"]) for fold in (False, True)]
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
        np.testing.assert_array_equal(a, b)


def test_features_without_classifier(reference):
    # num_classes=None returns the features; cheap at 64x64, checked against the
    # classifier model's dropout input (eval) on the same weights.
    _, variables = reference
    backbone = {"params": {k: v for k, v in variables["params"].items() if k != "fc"},
                "batch_stats": variables["batch_stats"]}
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 64, 64, 3))
    features = jax.jit(InceptionV1().apply)(backbone, x)
    logits = jax.jit(InceptionV1(num_classes=1000).apply)(variables, x)
    fc = variables["params"]["fc"]
    assert features.shape == (1, 1024)
    np.testing.assert_allclose(features @ fc["kernel"] + fc["bias"], logits, rtol=1e-5, atol=1e-5)


def test_training_gradients_match_torchvision(reference):
    # One training-mode step (batch statistics, dropout 0, cross-entropy) against torch's
    # autograd: covers the hand-written max-pool and convolution-kernel gradients and the
    # BatchNorm momentum convention.
    import optax

    ref, variables = reference
    x = jnp.asarray(maker.normalise(ref["images_97"]))
    labels = jnp.asarray(maker.TRAIN_LABELS)
    model = InceptionV1(num_classes=1000, dropout_rate=0.0)

    def loss_fn(params):
        logits, updates = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                      x, train=True, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates["batch_stats"]

    # compiled as the training steps are (drugjax.runtime.xla_cpu: XLA:CPU's convolution path)
    (loss, stats), grads = xla_cpu.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
    np.testing.assert_allclose(loss, ref["train_loss"], rtol=1e-5)
    # to_torchvision gives torch names and layouts; the other collection is only filler.
    got_grads = to_torchvision({"params": grads, "batch_stats": variables["batch_stats"]})
    got_stats = to_torchvision({"params": variables["params"], "batch_stats": stats})
    for key in maker.GRAD_KEYS:
        want = ref[f"grad/{key}"]
        err = np.max(np.abs(got_grads[key] - want)) / np.max(np.abs(want))
        assert err <= 2e-4, (key, err)  # measured <= 3e-5
    for key in maker.STAT_KEYS:
        np.testing.assert_allclose(got_stats[key], ref[f"train_stat/{key}"], rtol=1e-4, atol=1e-5)


def test_transform_input_matches_torchvision(reference):
    ref, variables = reference
    x = jnp.asarray(maker.normalise(ref["images_97"]))
    model = InceptionV1(num_classes=1000, transform_input=True)
    logits = np.asarray(jax.jit(lambda v, x: model.apply(v, x))(variables, x))
    assert np.max(np.abs(logits - ref["logits_97_transform"])) <= 1e-4


def test_bfloat16_compute_close_to_float32(reference):
    # bfloat16 activations lose ~0.2% per layer; through 22 layers of these random
    # weights that adds up to ~1.7% at 224x224 (measured), under the 2% budget.
    ref, variables = reference
    x = jnp.asarray(maker.normalise(ref["images_224"]))
    model = InceptionV1(num_classes=1000, dtype=jnp.bfloat16)
    logits = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    assert logits.dtype == jnp.bfloat16
    logits = np.asarray(logits, np.float32)
    want = ref["logits_224"]
    rel = np.linalg.norm(logits - want) / np.linalg.norm(want)
    assert rel <= 2e-2, rel


def test_bfloat16_error_bound_at_97px(reference):
    # At 97 px the logits' bf16 error is larger (2.7%) than at 224 px (1.7%) although each
    # activation is rounded no worse: the last block's per-position error is 3.9% here
    # (4.8% at 224 px), but global pooling averages it over 3x3 positions instead of 7x7,
    # so less of it cancels. The bound that holds at both sizes: per-position error of
    # the last block under 6%, pooled logits under 3% (docs/benchmarks.md).
    ref, variables = reference
    x = jnp.asarray(maker.normalise(ref["images_97"]))
    last = lambda m, name: m.name == "inception5b" and name == "__call__"

    def forward(dtype):
        logits, state = InceptionV1(num_classes=1000, dtype=dtype).apply(variables, x, capture_intermediates=last)
        return logits.astype(jnp.float32), state["intermediates"]["inception5b"]["__call__"][0].astype(jnp.float32)

    rel = lambda a, b: float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))
    (logits16, block16), (_, block32) = (jax.jit(forward, static_argnums=0)(d) for d in (jnp.bfloat16, jnp.float32))
    assert rel(block16, block32) < 0.06
    assert rel(logits16, ref["logits_97"]) < 0.03


def test_train_mode_updates_batch_stats_and_uses_dropout(reference):
    # The fixture's variables stand in for model.init, whose random initialisation of
    # 6.6M parameters takes tens of seconds to compile on CPU.
    _, variables = reference
    model = InceptionV1(num_classes=1000)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 64, 3))
    assert set(variables) == {"params", "batch_stats"}
    step = jax.jit(lambda v, x, key: model.apply(
        v, x, train=True, mutable=["batch_stats", "intermediates"], rngs={"dropout": key},
        capture_intermediates=lambda mdl, _: mdl.name == "conv" and mdl.parent.name == "conv1"))
    out1, upd = step(variables, x, jax.random.PRNGKey(2))
    out2, _ = step(variables, x, jax.random.PRNGKey(3))
    assert out1.shape == (2, 1000)
    assert not np.allclose(out1, out2)  # dropout differs by key
    conv1_out = upd["intermediates"]["conv1"]["conv"]["__call__"][0]
    old = variables["batch_stats"]["conv1"]["bn"]["mean"]
    new = upd["batch_stats"]["conv1"]["bn"]["mean"]
    # flax momentum 0.9 == torch momentum 0.1: new = 0.9 * old + 0.1 * batch mean.
    np.testing.assert_allclose(new, 0.9 * old + 0.1 * conv1_out.mean(axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(new, old)


def test_rejects_bad_input():
    model = InceptionV1()
    with pytest.raises(ValueError, match="NHWC"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 64, 64)))
    with pytest.raises(ValueError, match="at least 64x64"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))


@pytest.mark.parametrize("k,stride,pad", [(7, 2, 3), (1, 1, 0), (3, 1, 1), (3, 2, 1)])
def test_conv_gradient_matches_autodiff(k, stride, pad):
    # conv2d's custom gradient (a matmul for the 1x1 kernel on CPU) against XLA's own.
    from drugjax.models.ops import _conv, conv2d

    x = jax.random.normal(jax.random.PRNGKey(0), (2, 11, 11, 3))
    w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 3, 4))
    loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w, stride, pad)))  # noqa: E731
    got = jax.grad(loss(conv2d), (0, 1))(x, w)
    want = jax.grad(loss(_conv), (0, 1))(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window,stride,pads", [(3, 2, ((0, 1), (0, 1))), (3, 1, ((1, 1), (1, 1))),
                                                (2, 2, ((0, 1), (0, 0))), (3, 2, ((0, 0), (1, 0)))])
def test_max_pool_matches_reduce_window_and_its_gradient(window, stride, pads):
    # The separable max pool (rows, then columns) and its hand-written gradient against
    # reduce_window and XLA's gradient, ties included (ReLU zeros, repeated values): both
    # send the gradient to the first maximum in scan order, so the results are equal up
    # to the order in which overlapping windows' shares are added.
    import flax.linen as nn

    from drugjax.models.ops import max_pool

    x = jnp.round(jax.nn.relu(jax.random.normal(jax.random.PRNGKey(0), (2, 9, 8, 3))) * 2)
    want_y, want_vjp = jax.vjp(lambda x: nn.max_pool(x, (window, window), (stride, stride), pads), x)
    got_y, got_vjp = jax.vjp(lambda x: max_pool(x, window, stride, pads), x)
    np.testing.assert_array_equal(got_y, want_y)
    g = jax.random.normal(jax.random.PRNGKey(1), want_y.shape)
    np.testing.assert_allclose(got_vjp(g)[0], want_vjp(g)[0], rtol=1e-6, atol=1e-6)


def test_feature_extraction_backbone_folds_batch_norm():
    # Frozen features (train.py's heads set-up, evaluate.py's Table 1) come from the
    # folded forward; the backbone trained end to end does not fold.
    from drugjax.training import build
    from drugjax.training.config import TrainConfig

    cfg = TrainConfig()
    cfg.model.backbone.name = "inception_v1"
    assert build.make_backbone(cfg, jnp.float32, training=False).fold_batch_norm
    assert not build.make_backbone(cfg, jnp.float32).fold_batch_norm


@pytest.mark.slow  # four Inception-v1 compilations; every other test runs the fused default
def test_fused_1x1_matches_unfused_forward_and_gradients(reference):
    # Each block's three 1x1 convolutions of its input run as one convolution with the
    # kernels concatenated (fuse_1x1, the default): the same eval outputs (plain and
    # BatchNorm-folded), training-mode logits, batch statistics and gradients as one
    # convolution per branch, within float32 rounding, at 64 px. Gradients are compared
    # per parameter relative to its largest entry: the training-mode BatchNorm of the
    # 2x2 maps of inception5 (batch 4) amplifies rounding to ~1e-4 in every layer, fused
    # or not (measured <= 1.3e-4).
    import optax

    _, variables = reference
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 64, 64, 3))
    labels = jnp.arange(4)

    def outputs(fuse):
        model = InceptionV1(num_classes=1000, dropout_rate=0.0, fuse_1x1=fuse)
        folded = InceptionV1(num_classes=1000, fold_batch_norm=True, fuse_1x1=fuse)

        def loss_fn(params):
            logits, updates = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                          x, train=True, mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, updates["batch_stats"])

        (_, (logits, stats)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
        evals = jax.jit(lambda v, x: (model.apply(v, x), folded.apply(v, x)))(variables, x)
        return {"eval": evals, "train_logits": logits, "batch_stats": stats, "grads": grads}

    plain, fused = outputs(False), outputs(True)
    assert jax.tree.structure(plain) == jax.tree.structure(fused)
    for a, b in zip(jax.tree.leaves(plain["eval"]) + [plain["train_logits"]],
                    jax.tree.leaves(fused["eval"]) + [fused["train_logits"]]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.max(np.abs(a)))
    for a, b in zip(jax.tree.leaves(plain["batch_stats"]), jax.tree.leaves(fused["batch_stats"])):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * np.max(np.abs(a)))
    flat = jax.tree_util.tree_flatten_with_path(plain["grads"])[0]
    for (path, a), b in zip(flat, jax.tree.leaves(fused["grads"])):
        err = np.max(np.abs(np.asarray(b) - a)) / np.max(np.abs(a))
        assert err <= 5e-4, (jax.tree_util.keystr(path), err)


def test_fused_1x1_keeps_parameters_and_fuses():
    # Fusing changes no parameter (names, shapes: weights files, checkpoints and the
    # torchvision conversion rely on them) and does remove two convolutions per block.
    shapes = [jax.eval_shape(lambda: InceptionV1(num_classes=10, fuse_1x1=fuse).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False)) for fuse in (False, True)]
    assert jax.tree_util.tree_flatten_with_path(shapes[0]) == jax.tree_util.tree_flatten_with_path(shapes[1])
    assert shapes[1]["params"]["inception3a"]["branch2_0"]["conv"]["kernel"].shape == (1, 1, 192, 96)

    def convs(fuse, fold):
        model = InceptionV1(num_classes=10, fuse_1x1=fuse, fold_batch_norm=fold)
        jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x))(shapes[0], jnp.zeros((1, 64, 64, 3)))
        return str(jaxpr).count("conv_general_dilated[")

    for fold in (False, True):
        assert convs(False, fold) == 57 and convs(True, fold) == 57 - 2 * 9


def test_pool_layers_concatenate_block_means_in_network_order(reference):
    # Multi-level features (the stand-in's default set-up): each named block's output,
    # globally averaged, in network order; the last 1024 are the default features.
    _, variables = reference
    backbone = {"params": {k: v for k, v in variables["params"].items() if k != "fc"},
                "batch_stats": variables["batch_stats"]}
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 64, 3))
    layers = ("inception3b", "inception4e", "inception5b")
    multi = jax.jit(InceptionV1(pool_layers=layers).apply)(backbone, x)
    assert multi.shape == (2, 480 + 832 + 1024)
    np.testing.assert_allclose(multi[:, -1024:], jax.jit(InceptionV1().apply)(backbone, x), rtol=1e-5, atol=1e-6)
    _, captured = jax.jit(lambda v, x: InceptionV1().apply(
        v, x, capture_intermediates=lambda m, name: m.name == "inception3b"))(backbone, x)
    block = captured["intermediates"]["inception3b"]["__call__"][0]
    np.testing.assert_allclose(multi[:, :480], block.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    # the order is the network's whatever order is given
    np.testing.assert_allclose(jax.jit(InceptionV1(pool_layers=layers[::-1]).apply)(backbone, x), multi, rtol=1e-6)
    for bad in ((), ("inception6a",), ("inception3b", "inception3b")):
        with pytest.raises(ValueError, match="pool_layers must be distinct inception block names"):
            InceptionV1(pool_layers=bad).apply(backbone, x)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batch_norm_relu_gradient_matches_autodiff(dtype):
    # The written-out backward of relu(BatchNorm(x)) in training mode against autodiff of
    # the same forward, with cotangents on all three outputs (the statistics' own
    # cotangents are zero in the model, where they only feed the running averages).
    from drugjax.models.ops import _batch_norm_relu_fwd, batch_norm_relu

    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    x = (jax.random.normal(keys[0], (4, 5, 5, 8)) * 3 + 1).astype(dtype)
    scale = jax.random.uniform(keys[1], (8,), minval=-1.5, maxval=1.5)
    bias = jax.random.normal(keys[2], (8,))
    cot = (jax.random.normal(keys[3], x.shape).astype(dtype), jax.random.normal(keys[4], (8,)),
           jax.random.normal(keys[5], (8,)))
    out, vjp = jax.vjp(lambda *a: batch_norm_relu(*a, 1e-3), x, scale, bias)
    want_out, want_vjp = jax.vjp(lambda *a: _batch_norm_relu_fwd(*a, 1e-3)[0], x, scale, bias)
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    for got, want in zip(out + vjp(cot), want_out + want_vjp(cot)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=tol, atol=tol)
