"""The real backbone through the real loop (as Flax's train_test.py runs its model for a
step): Inception-v1 at 64 px, end to end, its weights loaded from a file."""

import jax
import numpy as np
import pytest
from train_support import make_sources, tiny_config

from drugjax.models import weights
from drugjax.training.checkpoint import read_params
from drugjax.training.loop import train_and_evaluate


@pytest.fixture
def quick_compiles():
    """XLA with most optimisations off: this test checks the loop's wiring (the weights
    loaded and grafted, two steps taken), not speed or exact numerics, and compiling
    Inception-v1's training step is most of its time (39 s -> 25 s alone on 2 cores)."""
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


def test_inception_v1_trains_a_step_at_64_px_from_a_weights_file(tmp_path, quick_compiles):
    saved = weights.random_variables(num_classes=None, seed=3)
    path = weights.save_npz(saved, tmp_path / "backbone.npz")
    cfg = tiny_config(**{
        "model.backbone.name": "inception_v1", "model.backbone.weights": str(path), "data.image_size": 64,
        "steps": 2, "eval_every": 2, "checkpoint_every": 1, "optim.warmup_steps": 1,
    })
    res = train_and_evaluate(cfg, tmp_path / "run", sources=make_sources(size=64))
    assert res["step"] == 2 and np.isfinite(res["val"]["loss"])
    # The first warm-up step has learning rate 0, so after it the backbone holds the file's
    # weights: they were loaded and grafted, not initialised at random.
    params = read_params(tmp_path / "run" / "checkpoints" / "1")["params"]["backbone"]
    file_params = weights.load_backbone(path)["params"]
    assert jax.tree.structure(params) == jax.tree.structure(dict(file_params))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(dict(file_params))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
