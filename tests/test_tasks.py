import jax
import jax.numpy as jnp
import numpy as np
import pytest

from drugjax import tasks


def test_encoding_table_matches_the_paper():
    kinds = np.arange(len(tasks.KIND_NAMES))
    targets, weights = tasks.encode_labels(kinds, relation_weight=0.5)
    np.testing.assert_array_equal(
        targets,
        [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(
        weights,
        [
            [1, 0, 0, 0],
            [1, 0, 0, 0],
            [0.5, 1, 0, 0],
            [0.5, 0, 1, 0],
            [0.5, 0, 0, 1],
            [1, 1, 1, 1],
        ],
    )
    assert targets.dtype == weights.dtype == np.float32


@pytest.mark.parametrize("rw", [0.0, 0.25, 1.0])
def test_relation_weight_only_touches_the_parent_of_web_images(rw):
    kinds = np.array([tasks.WEB_WEED, tasks.WEB_PILLS, tasks.WEB_SYRUP, tasks.INSTAGRAM_POSITIVE])
    _, weights = tasks.encode_labels(kinds, relation_weight=rw)
    np.testing.assert_allclose(weights[:3, 0], rw)
    assert weights[3, 0] == 1.0


def test_jax_and_numpy_agree_also_under_jit():
    kinds = np.array([0, 1, 2, 3, 4, 5, 2, 0])
    t_np, w_np = tasks.encode_labels(kinds, 0.3)
    t_jx, w_jx = jax.jit(tasks.encode_labels)(jnp.asarray(kinds), 0.3)
    np.testing.assert_array_equal(t_np, t_jx)
    np.testing.assert_allclose(w_np, w_jx)


def test_kind_helpers_and_bad_labels():
    assert tasks.instagram_kind(1) == tasks.INSTAGRAM_POSITIVE
    assert tasks.web_kind("syrup") == tasks.WEB_SYRUP
    with pytest.raises(ValueError, match="weed"):
        tasks.web_kind("cocaine")
    with pytest.raises(ValueError, match="0 or 1"):
        tasks.instagram_kind(2)
    with pytest.raises(ValueError, match="kinds must lie"):
        tasks.encode_labels(np.array([6]))
