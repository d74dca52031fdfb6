"""Inception-v1 (GoogLeNet) in Flax linen, computing exactly what torchvision's
``googlenet`` computes.

The port follows torchvision (``torchvision.models.googlenet``), not the 2014 paper, so
that torchvision's ImageNet weights can be imported unchanged (see
``drugjax.models.weights``). The details that matter for exactness:

* every convolution is ``BasicConv2d``: conv without bias, BatchNorm (eps 1e-3, torch
  momentum 0.1, i.e. flax momentum 0.9), ReLU;
* convolution padding is explicit and symmetric (torch ``padding=p``); ``SAME`` would pad
  conv1's 7x7/2 as (2, 3) and shift every feature map by one pixel;
* max pools use torch's ``ceil_mode=True``: the output size is rounded up and the missing
  window is padded with -inf at the bottom/right only; maxpool4 is 2x2/2;
* the inception "5x5" branch is a 3x3 convolution (torchvision's known deviation);
* branch 4 is a 3x3/1 max pool with padding 1 followed by a 1x1 convolution;
* branches are concatenated in the order 1, 2, 3, 4 along channels;
* the auxiliary classifiers (training-only in torchvision) are not part of the port;
* in training mode, BatchNorm's running variance takes the unbiased batch variance, as
  torch's does (flax's BatchNorm takes the biased one).

The max-pool, convolution and BatchNorm+ReLU kernels the network calls, with the
gradients written by hand for XLA:CPU, live in :mod:`drugjax.models.ops`. The forward pass
is plain XLA everywhere; for inference, ``fold_batch_norm=True`` folds BatchNorm's running
statistics into the convolutions. The three 1x1 convolutions of each inception block's
input run as one convolution with their kernels concatenated at call time (``fuse_1x1``,
on by default; same parameters).

Inputs are NHWC (torchvision uses NCHW); parameter names mirror torchvision's module names
(``inception3a/branch2_1/conv``) so that weight conversion is a rename plus a transpose.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from drugjax.models import ops

Dtype = Any

# torch BatchNorm2d(eps=0.001) in torchvision's BasicConv2d; torch momentum 0.1 updates
# running = 0.9 * running + 0.1 * batch, which is flax's momentum 0.9.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) per inception block, torchvision order.
INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


def check_pool_layers(pool_layers: tuple[str, ...] | list[str]) -> None:
    """Raise ValueError unless ``pool_layers`` names distinct inception blocks."""
    unknown = [name for name in pool_layers if name not in INCEPTION_CFG]
    if unknown or not pool_layers or len(set(pool_layers)) != len(pool_layers):
        raise ValueError(f"pool_layers must be distinct inception block names of {list(INCEPTION_CFG)}, "
                         f"got {list(pool_layers)}")




class BatchNorm(nn.Module):
    """torch ``BatchNorm2d`` over the last axis of NHWC, with flax's variable names
    (params ``scale``/``bias``, batch_stats ``mean``/``var``).

    Unlike ``flax.linen.BatchNorm``, the running variance is updated with the unbiased
    batch variance (times n / (n - 1), n = N*H*W), as torch does; normalisation itself
    uses the biased variance in both. The batch variance is computed in two passes,
    mean((x - mean)^2), not as E[x^2] - E[x]^2 (flax's way), whose cancellation made one
    training step's gradients differ from torch's by up to 7e-4 relative instead of 3e-5.
    Statistics and normalisation are computed in float32 whatever the compute dtype, and
    the result is cast to ``dtype``.

    ``axis_name`` synchronises the batch statistics over that mapped axis (the data axis
    of ``pmap``/``shard_map``, ``drugjax.training.steps.AXIS``): the mean and then the
    two-pass variance are averaged with ``lax.pmean``, and the unbiased correction of the
    running variance uses the global count, so D devices with N/D examples each compute
    what one device computes with all N (every device must hold the same number of
    examples). None (the default) keeps each device's own statistics, bit for bit as
    before.
    """

    use_running_average: bool
    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    axis_name: str | None = None
    relu: bool = False  # relu(BatchNorm(x)); in training mode through batch_norm_relu

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        xf = x.astype(jnp.float32)
        # model.init runs outside any mapped axis: no axis to average over there.
        sync = self.axis_name is not None and not self.is_initializing()
        fused = self.relu and not self.use_running_average and not sync
        if fused:
            y, mean, var = ops.batch_norm_relu(x, scale, bias, self.epsilon)
        elif self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            mean, var = ops.batch_statistics(xf, self.axis_name if sync else None)
        if not self.use_running_average and not self.is_initializing():
            n = x.size // c
            if sync:
                n *= lax.axis_size(self.axis_name)
            m = self.momentum
            ra_mean.value = m * ra_mean.value + (1.0 - m) * mean
            ra_var.value = m * ra_var.value + (1.0 - m) * var * (n / max(n - 1, 1))
        if fused:
            return y.astype(self.dtype)
        mul = lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32)
        y = (xf - mean) * mul + bias.astype(jnp.float32)
        return (nn.relu(y) if self.relu else y).astype(self.dtype)


class BasicConv2d(nn.Module):
    """torchvision's BasicConv2d: conv (no bias) -> BatchNorm(eps 1e-3) -> ReLU.

    ``fold_batch_norm`` computes the eval forward (``train=False``) as one convolution
    with BatchNorm folded into kernel and bias (:meth:`_folded`)."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None

    fold_batch_norm: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, *, convolved: bool = False) -> jnp.ndarray:
        """``convolved=True``: ``x`` is already this layer's convolution output (the
        fused 1x1 convolutions of :class:`Inception`, which read ``conv/kernel`` from the
        variables themselves): only BatchNorm and ReLU run here."""
        if self.fold_batch_norm and not train and not self.is_initializing():
            if convolved:
                raise ValueError("the folded forward convolves itself")
            return self._folded(x)
        if not convolved:
            x = self._conv(x)
        return BatchNorm(
            use_running_average=not train,
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            axis_name=self.bn_axis_name,
            relu=True,
            name="bn",
        )(x)

    def _conv(self, x: jnp.ndarray) -> jnp.ndarray:
        return nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            strides=(self.stride, self.stride),
            padding=[(self.padding, self.padding)] * 2,
            use_bias=False,
            conv_general_dilated=ops.flax_conv,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)

    def _folded(self, x: jnp.ndarray) -> jnp.ndarray:
        """The eval forward with BatchNorm's running statistics folded into the
        convolution: relu(conv(x, w * m) + (b - mean * m)), m = scale / sqrt(var + eps).

        Reads the variables the unfolded path declares (``conv/kernel``, ``bn/scale``,
        ``bn/bias``, ``bn/mean``, ``bn/var``), so both paths take the same variables. The
        fold is computed in float32 on every call: 6.6M multiplies for the whole model,
        nothing beside the convolutions, and no second copy of the weights to keep in step.
        In bfloat16 the folded kernel is rounded to bfloat16 after the fold, one rounding
        more than the unfolded path (logits 2.3% from float32 at 224 px on the fixture,
        against about 1.7% unfolded): extract features in float32 for exactness.
        """
        kernel, shift = _fold(self.variables["params"], self.variables["batch_stats"])
        y = ops.conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.stride, self.padding)
        return nn.relu((y.astype(jnp.float32) + shift).astype(self.dtype))


def _fold(params, stats) -> tuple[jnp.ndarray, jnp.ndarray]:
    """One BasicConv2d's (kernel * m, b - mean * m) in float32, m = scale / sqrt(var + eps),
    from its ``params`` and ``batch_stats`` subtrees (``conv/kernel``, ``bn/...``)."""
    kernel = params["conv"]["kernel"].astype(jnp.float32)
    bn, ra = params["bn"], stats["bn"]
    mul = lax.rsqrt(ra["var"] + BN_EPSILON) * bn["scale"].astype(jnp.float32)
    return kernel * mul, bn["bias"].astype(jnp.float32) - ra["mean"] * mul


class Inception(nn.Module):
    """One inception block; output channels = ch1x1 + ch3x3 + ch5x5 + pool_proj."""

    cfg: Sequence[int]
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None
    fold_batch_norm: bool = False
    fuse_1x1: bool = True

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = self.cfg
        conv = lambda f, k, p, name: BasicConv2d(  # noqa: E731
            f, k, padding=p, dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
            fold_batch_norm=self.fold_batch_norm, name=name,
        )
        if self.fuse_1x1 and not self.is_initializing():
            b1, b2, b3 = self._fused_1x1(x, train, conv)
        else:
            b1 = conv(ch1x1, 1, 0, "branch1")(x, train)
            b2 = conv(ch3x3red, 1, 0, "branch2_0")(x, train)
            b3 = conv(ch5x5red, 1, 0, "branch3_0")(x, train)
        b2 = conv(ch3x3, 3, 1, "branch2_1")(b2, train)
        b3 = conv(ch5x5, 3, 1, "branch3_1")(b3, train)  # 3x3, as in torchvision
        # MaxPool2d(3, 1, padding=1, ceil_mode=True): same size, -inf border.
        b4 = ops.max_pool(x, 3, 1, ((1, 1), (1, 1)))
        b4 = conv(pool_proj, 1, 0, "branch4_1")(b4, train)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)

    def _fused_1x1(self, x: jnp.ndarray, train: bool, conv):
        """branch1, branch2_0 and branch3_0 (the three 1x1 convolutions of ``x``) as one
        convolution whose kernel concatenates theirs along the output channels, split
        after it; BatchNorm and ReLU stay per branch. The kernels are concatenated on
        every call from the three layers' own variables (``branchN/conv/kernel``), so
        parameters, weights files and checkpoints are those of the unfused model, and the
        gradient flows back through the concatenation to each kernel (one
        kernel-gradient matmul and one input-gradient convolution instead of three).
        With ``fold_batch_norm`` in eval mode the folded kernels and biases are
        concatenated instead."""
        ch1x1, ch3x3red, _, ch5x5red, _, _ = self.cfg
        names, sizes = ("branch1", "branch2_0", "branch3_0"), (ch1x1, ch3x3red, ch5x5red)
        cuts = (sizes[0], sizes[0] + sizes[1])
        params = self.variables["params"]
        if self.fold_batch_norm and not train:
            stats = self.variables["batch_stats"]
            folded = [_fold(params[n], stats[n]) for n in names]
            kernel = jnp.concatenate([k for k, _ in folded], axis=-1).astype(self.dtype)
            shift = jnp.concatenate([b for _, b in folded])
            y = ops.conv2d(x, kernel, 1, 0)
            y = nn.relu((y.astype(jnp.float32) + shift).astype(self.dtype))
            return jnp.split(y, cuts, axis=-1)
        kernel = jnp.concatenate([params[n]["conv"]["kernel"] for n in names], axis=-1)
        # Through ops.flax_conv, as nn.Conv calls it (bench/backbone.py swaps it for XLA's).
        y = ops.flax_conv(x, kernel.astype(self.dtype), (1, 1), ((0, 0), (0, 0)), dimension_numbers=ops.DIMS)
        return [conv(f, 1, 0, n)(part, train, convolved=True)
                for f, n, part in zip(sizes, names, jnp.split(y, cuts, axis=-1))]


class InceptionV1(nn.Module):
    """Inception-v1 / GoogLeNet, exactly as torchvision's ``googlenet`` (no aux heads).

    Attributes:
      num_classes: None returns the (N, 1024) pooled features; an int adds dropout and a
        dense classifier and returns (N, num_classes) logits.
      dropout_rate: dropout before the classifier (torchvision: 0.2).
      transform_input: rescale inputs normalised with ImageNet mean/std to the
        (x - 0.5) / 0.5 convention; torchvision's pretrained weights expect it on.
      dtype: compute dtype (e.g. ``jnp.bfloat16``).
      param_dtype: parameter dtype (keep float32).
      bn_axis_name: synchronised BatchNorm: the mapped axis (``drugjax.training.steps.AXIS``)
        over which training-mode batch statistics are averaged (see :class:`BatchNorm`);
        None normalises with each device's own batch. Training with it set must run
        inside ``pmap``/``shard_map`` over that axis.
      fold_batch_norm: in eval mode (``train=False``), fold each BatchNorm's running
        statistics into its convolution's kernel and a bias (one convolution, one add,
        ReLU) instead of normalising the convolution's output: the same function, same
        variables, faster inference (feature extraction). Training mode is unaffected.
      pool_layers: the inception blocks whose outputs are global-average-pooled and
        concatenated (in network order) into the features: ``("inception5b",)`` is
        torchvision's 1024-d pool; adding mid-level blocks keeps colour and shape detail a
        backbone pre-trained on few classes drops by its last block (docs/training.md).
        Only the default takes torchvision's classifier.
      fuse_1x1: compute each inception block's three 1x1 convolutions of the block input
        (branch1, branch2_0, branch3_0) as one convolution with their kernels
        concatenated, split after it (:meth:`Inception._fused_1x1`): the same function
        within float32 rounding, the same parameters. False computes them one by one.

    Call as ``model.apply(variables, x, train=False)`` with ``x`` NHWC float, normalised
    with ImageNet mean/std. ``train=True`` uses batch statistics, updates ``batch_stats``
    (pass ``mutable=["batch_stats"]``) and needs ``rngs={"dropout": key}`` when there is a
    classifier. Any input size from 64x64 up works.
    """

    num_classes: int | None = None
    dropout_rate: float = 0.2
    transform_input: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None
    fold_batch_norm: bool = False
    fuse_1x1: bool = True
    pool_layers: tuple[str, ...] = ("inception5b",)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(
                f"InceptionV1 expects NHWC images with 3 channels, got shape {x.shape}; "
                "transpose NCHW input with x.transpose(0, 2, 3, 1)."
            )
        if min(x.shape[1:3]) < 64:
            raise ValueError(
                f"InceptionV1 needs images of at least 64x64, got {x.shape[1]}x{x.shape[2]}."
            )
        if self.transform_input:
            # torchvision's _transform_input: undo ImageNet mean/std, apply (x-0.5)/0.5.
            mean = jnp.array([0.485, 0.456, 0.406], x.dtype)
            std = jnp.array([0.229, 0.224, 0.225], x.dtype)
            x = x * (std / 0.5) + (mean - 0.5) / 0.5
        x = x.astype(self.dtype)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                  fold_batch_norm=self.fold_batch_norm)
        x = BasicConv2d(64, 7, stride=2, padding=3, name="conv1", **kw)(x, train)
        x = ops.ceil_max_pool(x, 3, 2)
        x = BasicConv2d(64, 1, name="conv2", **kw)(x, train)
        x = BasicConv2d(192, 3, padding=1, name="conv3", **kw)(x, train)
        x = ops.ceil_max_pool(x, 3, 2)
        check_pool_layers(self.pool_layers)
        pooled = []  # blocks after the last pooled one stay (their parameters load); jit drops their work

        def block(name: str, x: jnp.ndarray) -> jnp.ndarray:
            x = Inception(INCEPTION_CFG[name], fuse_1x1=self.fuse_1x1, name=name, **kw)(x, train)
            if name in self.pool_layers:
                pooled.append(jnp.mean(x, axis=(1, 2)))  # AdaptiveAvgPool2d((1, 1)) + flatten
            return x

        for name in ("inception3a", "inception3b"):
            x = block(name, x)
        x = ops.ceil_max_pool(x, 3, 2)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            x = block(name, x)
        x = ops.ceil_max_pool(x, 2, 2)
        for name in ("inception5a", "inception5b"):
            x = block(name, x)
        x = pooled[0] if len(pooled) == 1 else jnp.concatenate(pooled, axis=-1)
        if self.num_classes is None:
            return x
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="fc")(x)
