"""XLA:CPU compile options for drugjax's jitted steps, set per jit (and, for ``jax.pmap``,
which takes none, per ahead-of-time compilation: :func:`compile_per_signature`).

By default XLA:CPU hands convolutions, dot products and reductions to YNNPACK. For
Inception-v1 on the CPUs measured here, its Eigen convolutions are faster (forward,
input and kernel gradients alike) while YNNPACK's reductions are faster than XLA's own
(BatchNorm's batch statistics). So convolutions go to Eigen while dots and reductions
stay on YNNPACK; moving reductions off YNNPACK too (``LIBRARY_FUSION_TYPE_DOT`` alone)
makes the training step much slower. docs/benchmarks.md holds the measured speed-ups.
Results stay within the torchvision fixture's tolerances.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import jax
import jax.numpy as jnp

log = logging.getLogger(__name__)

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


@functools.cache
def options() -> dict[str, str]:
    """:data:`CPU_OPTIONS` on the CPU backend when this XLA accepts them, else none
    (logged once: an XLA without them compiles as it would by default)."""
    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS)(jnp.zeros(1)).block_until_ready()
    except jax.errors.JaxRuntimeError as e:
        log.warning("compiling without %s: %s", CPU_OPTIONS, e)
        return {}
    return dict(CPU_OPTIONS)


def jit(fn: Callable, **kwargs: Any) -> Any:
    """``jax.jit(fn, **kwargs)`` with :func:`options` as its compiler options."""
    return jax.jit(fn, compiler_options=options() or None, **kwargs)


def compile_per_signature(traceable: Any) -> Callable:
    """``traceable`` (a ``jax.pmap``-ed function: ``jax.pmap`` takes no compiler options)
    compiled ahead of time with :func:`options`, once for each new signature of its
    arguments (tree structure, shapes, dtypes, weak types, shardings), where jit would
    compile again. Returned unchanged where there are no options (GPUs, an XLA without
    them). The fine-tuning step runs faster so than as ``jax.pmap`` compiles it
    (docs/training.md, "Speed on a CPU")."""
    opts = options()
    if not opts:
        return traceable
    compiled: dict[Any, Any] = {}

    def call(*args):
        leaves, tree = jax.tree.flatten(args)
        key = (tree, tuple((jax.typeof(a), getattr(a, "sharding", None)) for a in leaves))
        if key not in compiled:
            compiled[key] = traceable.lower(*args).compile(compiler_options=opts)
        return compiled[key](*args)

    call.signatures = compiled  # what has been compiled, for inspection
    return call
