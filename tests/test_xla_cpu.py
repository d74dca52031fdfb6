"""drugjax.runtime.xla_cpu: the XLA:CPU compile options of the jitted steps, and the fallback."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from drugjax.runtime import xla_cpu
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


def test_pmap_steps_compile_once_per_signature_with_the_options():
    # jax.pmap takes no compiler options: DataParallel's pmap mode compiles its steps
    # ahead of time with them, once per argument signature, as jit would.
    from drugjax.training.steps import AXIS

    pmapped = jax.pmap(lambda w, x: (jax.lax.psum(x @ w, AXIS), x * 2), axis_name=AXIS, in_axes=(None, 0))
    step = xla_cpu.compile_per_signature(pmapped)
    w = jnp.arange(12.0).reshape(4, 3)
    x = np.ones((1, 2, 4), np.float32)
    for got, want in zip(step(w, x), pmapped(w, x)):
        np.testing.assert_allclose(got, want)
    step(w, x + 1)
    assert len(step.signatures) == 1
    step(w, np.ones((1, 5, 4), np.float32))  # a new shape compiles again
    assert len(step.signatures) == 2


def test_pmap_steps_unchanged_without_options(monkeypatch):
    monkeypatch.setattr(xla_cpu, "options", lambda: {})
    pmapped = jax.pmap(lambda x: x + 1)
    assert xla_cpu.compile_per_signature(pmapped) is pmapped


@pytest.mark.parametrize("mode", ["pmap", "shard_map"])
def test_a_step_fed_its_own_state_compiles_once(mode, caplog):
    # The state a step returns goes into the next step: were its placement (sharding)
    # other than put_state's, the second step would compile the whole step again (for
    # Inception-v1 on CPU, a minute). Compilations are counted from JAX's own log.
    from drugjax.models.heads import MultitaskHeads
    from drugjax.training.config import OptimConfig
    from drugjax.training.optim import make_optimizer
    from drugjax.training.state import TrainState
    from drugjax.training.steps import DataParallel, make_steps

    rng = np.random.default_rng(0)
    model = MultitaskHeads(hidden=(8,))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((4, 16)))
    tx = make_optimizer(OptimConfig(warmup_steps=1), variables["params"], total_steps=4)
    parallel = DataParallel(mode, jax.devices()[:1])
    state = parallel.put_state(TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                                                 rng=jax.random.PRNGKey(1)))
    train, _ = make_steps(parallel, relation_weight=0.5)

    def step(state):
        batch = {"x": rng.normal(size=(1, 4, 16)).astype(np.float32),
                 "kind": rng.integers(0, 6, (1, 4)).astype(np.int32), "valid": np.ones((1, 4), bool)}
        state, metrics = train(state, parallel.put_batch(batch))
        jax.block_until_ready(metrics)
        return state

    def compilations(steps, state):
        caplog.clear()
        with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
            for _ in range(steps):
                state = step(state)
        return [r.getMessage() for r in caplog.records if "Finished XLA compilation" in r.getMessage()], state

    first, state = compilations(1, state)
    assert first  # the step's program (the log can see compilations)
    again, _ = compilations(3, state)
    assert again == []
    if mode == "pmap" and xla_cpu.options():
        assert len(train.signatures) == 1
