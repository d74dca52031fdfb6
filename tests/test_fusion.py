"""Late fusion: the weighted mean, the missing-modality rule, the weight curve and the
inner-CV choice of the weight."""

from __future__ import annotations

import numpy as np
import pytest

from drugjax.metrics import binary_metrics
from drugjax.fusion import DEFAULT_WEIGHT, WEIGHT_GRID, fuse, select_weight, weight_curve

NAN = float("nan")


def test_weighted_mean():
    image, text = np.array([0.2, 0.9, 0.5]), np.array([0.6, 0.1, 0.5])
    np.testing.assert_allclose(fuse(image, text).probability, [0.4, 0.5, 0.5])
    np.testing.assert_allclose(fuse(image, text, weight=0.3).probability, 0.3 * image + 0.7 * text)
    np.testing.assert_allclose(fuse(image, text, weight=1.0).probability, image)
    np.testing.assert_allclose(fuse(image, text, weight=0.0).probability, text)
    assert DEFAULT_WEIGHT == 0.5  # the paper's


def test_missing_modality_scored_by_the_other():
    fused = fuse([NAN, 0.8, 0.2, NAN], [0.3, NAN, 0.6, 0.9], weight=0.5)
    np.testing.assert_allclose(fused.probability, [0.3, 0.8, 0.4, 0.9])
    assert fused.scored_by_text_only == 2
    assert fused.scored_by_image_only == 1


def test_missing_both_is_one_clear_error():
    with pytest.raises(ValueError, match=r"2 post\(s\) have neither an image nor a text probability \(first: index 1\)"):
        fuse([0.1, NAN, NAN], [0.2, NAN, NAN])


@pytest.mark.parametrize("image, text, weight, match", [
    ([1.2], [0.5], 0.5, r"image_probability\[0\] = 1.2 is not a probability"),
    ([0.5], [-0.1], 0.5, r"text_probability\[0\] = -0.1 is not a probability"),
    ([0.5], [0.5, 0.5], 0.5, "differ in length"),
    ([0.5], [0.5], 1.5, "fusion weight must lie in"),
])
def test_bad_input(image, text, weight, match):
    with pytest.raises(ValueError, match=match):
        fuse(image, text, weight)


def _two_modalities(n=400, seed=0):
    """Labels, a good image score, a weaker text score with independent errors."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    image = np.clip(0.5 + 0.35 * (2 * y - 1) + rng.normal(0, 0.2, n), 0, 1)
    text = np.clip(0.5 + 0.15 * (2 * y - 1) + rng.normal(0, 0.25, n), 0, 1)
    folds = rng.permutation(np.arange(n) % 5)
    return y, image, text, folds


def test_weight_curve_endpoints_are_the_single_classifiers():
    y, image, text, folds = _two_modalities()
    curve = weight_curve(y, image, text, folds)
    assert [p.weight for p in curve] == list(WEIGHT_GRID) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    for point, alone in ((curve[0], text), (curve[-1], image)):
        per_fold = [binary_metrics(y[folds == f], alone[folds == f]) for f in range(5)]
        assert point.summary.n_folds == 5
        assert point.summary.mean["auc"] == pytest.approx(np.mean([m["auc"] for m in per_fold]))
        assert point.summary.mean["f1"] == pytest.approx(np.mean([m["f1"] for m in per_fold]))


def test_weight_curve_without_folds_scores_all_posts():
    y, image, text, _ = _two_modalities()
    point = weight_curve(y, image, text, weights=[0.5])[0]
    assert point.summary.n_folds == 1
    assert point.summary.mean["auc"] == pytest.approx(binary_metrics(y, 0.5 * image + 0.5 * text)["auc"])


def test_select_weight_follows_the_better_classifier():
    y, image, text, folds = _two_modalities()
    assert select_weight(y, image, text, folds, metric="auc") >= 0.6
    # swap the roles: the informative score is now the text
    assert select_weight(y, text, image, folds, metric="auc") <= 0.4


def test_select_weight_is_the_best_mean_over_inner_folds():
    y, image, text, folds = _two_modalities(seed=1)
    curve = weight_curve(y, image, text, folds)
    best = max(curve, key=lambda p: p.summary.mean["f1"])
    assert select_weight(y, image, text, folds, metric="f1") == best.weight


def test_select_weight_ties_go_to_the_papers_weight():
    y, image, _, folds = _two_modalities()
    # identical scores: every weight gives the same fused score
    assert select_weight(y, image, image.copy(), folds) == 0.5
    assert select_weight(y, image, image.copy(), folds, weights=[0.0, 0.4, 0.6, 1.0]) == 0.4


def test_select_weight_rejects_a_single_fold_and_unknown_metric():
    y, image, text, folds = _two_modalities()
    with pytest.raises(ValueError, match="at least 2 inner folds"):
        select_weight(y, image, text, np.zeros_like(folds))
    with pytest.raises(ValueError, match="metric must be one of"):
        select_weight(y, image, text, folds, metric="loss")


def test_nested_selection_never_sees_the_test_fold():
    # The protocol of select_weight's docstring, with the tags-only classifier standing in
    # for the image model: inner folds and out-of-fold scores on the outer training posts
    # only. Changing everything about the test fold leaves the chosen weight as it was.
    from drugjax.synthetic import world
    from drugjax.data.folds import out_of_fold_probability, stratified_folds
    from drugjax.text import TextClassifier

    posts, *_ = world.plan("small", seed=0)
    y = np.array([p["drug"] for p in posts])
    outer = stratified_folds(y, n_splits=5, seed=0)

    def chosen_weight(posts, y):
        train = np.flatnonzero(outer != 0)
        train_posts, train_y = [posts[i] for i in train], y[train]
        inner = stratified_folds(train_y, n_splits=3, seed=1)
        image_like = out_of_fold_probability(TextClassifier(mode="tags"), train_posts, train_y, inner)
        text = out_of_fold_probability(TextClassifier(mode="caption"), train_posts, train_y, inner)
        return select_weight(train_y, image_like, text, inner, metric="auc")

    scrambled_posts = [{"tags": ["x"], "caption": "y"} if f == 0 else p for p, f in zip(posts, outer)]
    scrambled_y = np.where(outer == 0, 1 - y, y)
    weight = chosen_weight(posts, y)
    assert weight == chosen_weight(scrambled_posts, scrambled_y)
    assert 0.0 < weight < 1.0  # both stand-ins carry signal: a real mixture is chosen
