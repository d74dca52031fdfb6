import jax
import jax.numpy as jnp
import numpy as np
import pytest

from drugjax.losses import masked_bce


def numpy_eq1(z, y, w):
    """Eq. 1 evaluated directly, in float64."""
    z = z.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    with np.errstate(divide="ignore", invalid="ignore"):
        term = w * (y * np.log(p) + (1 - y) * np.log(1 - p))
    term = np.where(w == 0, 0.0, term)
    return -term.sum() / z.shape[0]


def test_matches_the_formula_on_random_inputs_with_masks():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (64, 4)).astype(np.float32)
    y = rng.integers(0, 2, (64, 4)).astype(np.float32)
    w = rng.choice([0.0, 0.5, 1.0], (64, 4)).astype(np.float32)
    got = jax.jit(masked_bce)(z, y, w)
    np.testing.assert_allclose(got, numpy_eq1(z, y, w), rtol=1e-5)


def test_masked_entries_contribute_nothing():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, (8, 4)).astype(np.float32)
    y = rng.integers(0, 2, (8, 4)).astype(np.float32)
    w = np.ones((8, 4), np.float32)
    w[:, 1:] = 0
    z2 = z.copy()
    z2[:, 1:] = rng.normal(0, 50, (8, 3))  # anything at all in the masked slots
    assert float(masked_bce(z, y, w)) == float(masked_bce(z2, y, w))
    grad = jax.grad(masked_bce)(jnp.asarray(z2), y, w)
    assert np.all(np.asarray(grad)[:, 1:] == 0)


def test_extreme_logits_are_finite_and_correct():
    z = np.array([[100.0, -100.0, 100.0, -100.0]], np.float32)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    w = np.ones_like(z)
    loss = masked_bce(z, y, w)
    # Two confidently wrong entries cost 100 each; two confidently right ones ~0.
    np.testing.assert_allclose(loss, 200.0, rtol=1e-6)
    grad = jax.grad(masked_bce)(jnp.asarray(z), y, w)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0, 0.0]], atol=1e-6)
    # Masked extreme entries stay exactly zero.
    assert float(masked_bce(z, y, np.zeros_like(z))) == 0.0


def test_normalised_by_batch_size():
    z = np.zeros((10, 4), np.float32)
    y = np.zeros((10, 4), np.float32)
    w = np.zeros((10, 4), np.float32)
    w[0, 0] = 1.0  # one unmasked entry among 10 samples
    np.testing.assert_allclose(masked_bce(z, y, w), np.log(2) / 10, rtol=1e-6)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="one shape"):
        masked_bce(np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((2, 4)))
