"""drugjax.xla_cpu: the XLA:CPU compile options of the jitted steps, and the fallback."""

import jax
import jax.numpy as jnp
import numpy as np

from drugjax import xla_cpu
from drugjax.models import InceptionV1
from drugjax.models.weights import random_variables


def test_steps_compile_with_the_cpu_options_and_compute_the_same():
    assert xla_cpu.options() == xla_cpu.CPU_OPTIONS  # this jaxlib accepts them on CPU
    model = InceptionV1(num_classes=10, fold_batch_norm=True)
    variables = random_variables(10)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 64, 64, 3))
    forward = lambda v, x: model.apply(v, x, train=False)
    got = xla_cpu.jit(forward)(variables, x)
    np.testing.assert_allclose(got, jax.jit(forward)(variables, x), rtol=1e-5, atol=1e-5)


def test_an_xla_without_the_options_compiles_without_them(monkeypatch, caplog):
    monkeypatch.setattr(xla_cpu, "CPU_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_TYPE"})
    xla_cpu.options.cache_clear()
    try:
        assert xla_cpu.options() == {}
        assert "compiling without" in caplog.text
        np.testing.assert_allclose(xla_cpu.jit(lambda x: x * 2)(jnp.ones(3)), 2.0)
    finally:
        xla_cpu.options.cache_clear()
