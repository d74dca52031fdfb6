"""The convolution, max-pool and BatchNorm+ReLU kernels of Inception-v1, with their
gradients written for XLA:CPU.

On CPU, XLA's own lowering of the max-pool gradient and of a 1x1 convolution's kernel
gradient is much slower than the hand-written gradients here (same values), and autodiff
of BatchNorm's two-pass statistics makes more passes over the activations than the
written-out backward; docs/benchmarks.md holds the measured effect of each. The forward
passes are XLA's own on every platform, and the gradients fall back to XLA's off CPU
(``lax.platform_dependent``) where they would not help.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _pool_taps(xp: jnp.ndarray, axis: int, window: int, stride: int, out: int):
    """(t, strided slice of xp seen by tap t of every window along ``axis``), t in scan order."""
    for t in range(window):
        yield t, lax.slice_in_dim(xp, t, t + (out - 1) * stride + 1, stride, axis)


def _pad_axis(x: jnp.ndarray, axis: int, pads: tuple[int, int], value) -> jnp.ndarray:
    widths = [(0, 0)] * x.ndim
    widths[axis] = pads
    return jnp.pad(x, widths, constant_values=value)


def _max_pool_1d(x: jnp.ndarray, axis: int, window: int, stride: int, pads: tuple[int, int]) -> jnp.ndarray:
    xp = _pad_axis(x, axis, pads, -jnp.inf)
    out = (xp.shape[axis] - window) // stride + 1
    return functools.reduce(jnp.maximum, (tap for _, tap in _pool_taps(xp, axis, window, stride, out)))


def _separable_max_pool(window, stride, pads, x):
    """Rows first (along W), then columns (along H): the same maxima as the 2-D window,
    in two passes of ``window`` taps instead of one of ``window**2``."""
    (pt, pb), (pl, pr) = pads
    return _max_pool_1d(_max_pool_1d(x, 2, window, stride, (pl, pr)), 1, window, stride, (pt, pb))


def _max_pool_grad_1d(x, y, g, axis, window, stride, pads):
    """Gradient of ``y = _max_pool_1d(x, ...)``: each window's gradient goes to its first
    maximum along ``axis`` (ties included)."""
    xp = _pad_axis(x, axis, pads, -jnp.inf)
    out = y.shape[axis]
    zero = jnp.zeros((), g.dtype)
    taken = jnp.zeros(y.shape, bool)
    grad = jnp.zeros(xp.shape, g.dtype)
    for t, tap in _pool_taps(xp, axis, window, stride, out):
        hit = (tap == y) & ~taken
        taken = taken | hit
        # Place this tap's share back on the input grid: interior padding undoes the stride.
        widths = [(0, 0, 0)] * x.ndim
        widths[axis] = (t, xp.shape[axis] - t - (out - 1) * stride - 1, stride - 1)
        grad = grad + lax.pad(jnp.where(hit, g, zero), zero, widths)
    return lax.slice_in_dim(grad, pads[0], pads[0] + x.shape[axis], axis=axis)


def _separable_max_pool_grad(window, stride, pads, x, y, g):
    """The 2-D first maximum in torch's scan order (rows of the window top to bottom, each
    left to right) is the first maximum of the first row that holds the window's maximum:
    route the gradient through the columns pass, then through the rows pass. The rows
    pass's output is recomputed (one pass of ``window`` taps) rather than kept."""
    (pt, pb), (pl, pr) = pads
    rows = _max_pool_1d(x, 2, window, stride, (pl, pr))
    g_rows = _max_pool_grad_1d(rows, y, g, 1, window, stride, (pt, pb))
    return _max_pool_grad_1d(x, rows, g_rows, 2, window, stride, (pl, pr))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x: jnp.ndarray, window: int, stride: int,
             pads: tuple[tuple[int, int], tuple[int, int]]) -> jnp.ndarray:
    """Max pool over H, W of an NHWC array, padding with -inf (torch's implicit padding).

    On CPU, forward and gradient are separable: a max over each row of the window, then
    over those row maxima; the gradient goes to the window's first maximum in scan order,
    as torch's max_pool2d (and XLA's select-and-scatter) sends it. XLA:CPU's own
    reduce_window and its gradient, a select-and-scatter over materialised index arrays,
    were slower, and so was a hand-written gradient over the 2-D window's 9 taps
    (docs/benchmarks.md). Other platforms keep reduce_window and XLA's gradient
    (``lax.platform_dependent``).
    """
    return lax.platform_dependent(x, cpu=functools.partial(_separable_max_pool, window, stride, pads),
                                  default=functools.partial(_xla_max_pool, window, stride, pads))


def _xla_max_pool(window, stride, pads, x):  # reduce_window: good on GPU/TPU
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)


def _max_pool_fwd(x, window, stride, pads):
    y = max_pool(x, window, stride, pads)
    return y, (x, y)


def _max_pool_bwd(window, stride, pads, res, g):
    x, y = res

    def xla_grad(x, y, g):  # select-and-scatter: good on GPU/TPU
        return jax.vjp(functools.partial(_xla_max_pool, window, stride, pads), x)[1](g)[0]

    return (lax.platform_dependent(x, y, g, cpu=functools.partial(_separable_max_pool_grad, window, stride, pads),
                                   default=xla_grad),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def ceil_max_pool(x: jnp.ndarray, window: int, stride: int) -> jnp.ndarray:
    """Max pool over H, W of an NHWC array like torch ``MaxPool2d(window, stride,
    ceil_mode=True)`` with no explicit padding.

    torch rounds the output size up, so the last window may hang over the bottom/right
    edge; that overhang is padded with -inf (i.e. ignored). torch also drops a window that
    would start entirely outside the input, which cannot happen for window >= stride.
    """
    pads = []
    for size in x.shape[1:3]:
        out = math.ceil((size - window) / stride) + 1
        if (out - 1) * stride >= size:  # torch's rule; unreachable for window >= stride
            out -= 1
        pads.append((0, max(0, (out - 1) * stride + window - size)))
    return max_pool(x, window, stride, (pads[0], pads[1]))


DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jnp.ndarray, w: jnp.ndarray, stride: int, pad: int) -> jnp.ndarray:
    return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                    dimension_numbers=DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jnp.ndarray, w: jnp.ndarray, stride: int, pad: int) -> jnp.ndarray:
    """NHWC x HWIO convolution with symmetric padding, as torch's ``Conv2d(padding=pad)``.

    Forward and input gradient are XLA's own, and so is the kernel gradient of k > 1
    kernels. On CPU the kernel gradient of a 1x1 convolution is one matrix product of the
    input with the output gradient: XLA:CPU otherwise lowers it to a convolution whose
    "kernel" is the whole feature map. For k > 1, with XLA's Eigen convolutions
    (``drugjax.runtime.xla_cpu``), XLA's own kernel gradient beats an im2col product
    (docs/benchmarks.md). Other platforms keep XLA's own kernel gradient throughout
    (``lax.platform_dependent``).
    """
    return _conv(x, w, stride, pad)


def _conv2d_fwd(x, w, stride, pad):
    return _conv(x, w, stride, pad), (x, w)


def _conv2d_bwd(stride, pad, res, g):
    x, w = res
    (dx,) = jax.vjp(lambda x_: _conv(x_, w, stride, pad), x)[1](g)

    def xla_grad(x, w, g):
        return jax.vjp(lambda w_: _conv(x, w_, stride, pad), w)[1](g)[0]

    if w.shape[:2] == (1, 1) and stride == 1 and pad == 0:
        dw = lax.platform_dependent(x, w, g, cpu=_pointwise_kernel_grad, default=xla_grad)
    else:
        dw = xla_grad(x, w, g)
    return dx, dw


def _pointwise_kernel_grad(x, w, g):
    """Kernel gradient of a 1x1, stride-1 convolution: x^T g over every position."""
    cin, cout = w.shape[2:]
    dw = lax.dot_general(x.reshape(-1, cin), g.reshape(-1, cout), (((0,), (0,)), ((), ())),
                         preferred_element_type=jnp.float32)
    return dw.reshape(w.shape).astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def flax_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, precision=None, **unused):
    """Adapter with ``lax.conv_general_dilated``'s signature for ``nn.Conv``: only the
    plain strided, symmetrically padded convolutions of this model are routed here."""
    (pt, pb), (pl, pr) = padding
    dilated = any(d != 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ()))
    if not (pt == pb == pl == pr and window_strides[0] == window_strides[1]
            and feature_group_count == 1 and not dilated):
        raise NotImplementedError("conv2d supports symmetric padding, equal strides, "
                                  "no dilation and no feature groups")
    return conv2d(lhs, rhs, window_strides[0], pt)


def batch_statistics(xf: jnp.ndarray, axis_name: str | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-channel mean and biased variance, the variance in two passes (see BatchNorm);
    with ``axis_name``, each averaged over that mapped axis in turn."""
    axes = tuple(range(xf.ndim - 1))
    mean = jnp.mean(xf, axes)
    if axis_name is not None:
        mean = lax.pmean(mean, axis_name)
    var = jnp.mean(jnp.square(xf - mean), axes)
    if axis_name is not None:
        var = lax.pmean(var, axis_name)
    return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_relu(x: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray, epsilon: float):
    """relu(BatchNorm(x)) in training mode over the last axis, in float32, with its batch
    mean and biased variance: ``(relu output as x.dtype, mean, var)``.

    The gradient is written out: with xhat = (x - mean) / sqrt(var + eps) and dy the
    output gradient where the output is positive, dbias = sum(dy), dscale = sum(dy * xhat),
    dx = scale / sqrt(var + eps) * (dy - (dbias + xhat * dscale) / n), plus the terms of
    the mean's and variance's own cotangents. Autodiff of the two-pass variance spreads
    the same arithmetic over more passes over the activations: this backward reads x and
    dy twice (the sums, then dx); its effect on a training step is in docs/benchmarks.md.
    """
    return _batch_norm_relu_fwd(x, scale, bias, epsilon)[0]


def _batch_norm_relu_fwd(x, scale, bias, epsilon):
    xf = x.astype(jnp.float32)
    mean, var = batch_statistics(xf)
    inv = lax.rsqrt(var + epsilon)
    y = jnp.maximum((xf - mean) * (inv * scale.astype(jnp.float32)) + bias.astype(jnp.float32), 0.0)
    return (y.astype(x.dtype), mean, var), (x, y, mean, inv, scale)


def _batch_norm_relu_bwd(epsilon, res, cotangents):
    x, y, mean, inv, scale = res
    dout, dmean, dvar = cotangents
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    xhat = (x.astype(jnp.float32) - mean) * inv
    dy = jnp.where(y > 0, dout.astype(jnp.float32), 0.0)
    dbias = jnp.sum(dy, axes)
    dscale = jnp.sum(dy * xhat, axes)
    mul = inv * scale.astype(jnp.float32)
    # dmean, dvar: cotangents of the returned statistics (zero when they only feed the
    # running averages); d var / d x = 2 (x - mean) / n = 2 xhat / (inv n).
    dx = mul * (dy - (dbias + xhat * dscale) / n) + (dmean + 2.0 * dvar * xhat / inv) / n
    return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(scale.dtype)


batch_norm_relu.defvjp(_batch_norm_relu_fwd, _batch_norm_relu_bwd)
