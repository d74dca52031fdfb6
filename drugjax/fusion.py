"""Late fusion of the image and text classifiers (paper, Section 2.3).

The fused probability of a post is ``w * p_image + (1 - w) * p_text``; the paper takes
``w = 0.5``. A post without a usable image (its image probability is NaN: no picture,
or one that failed to decode) is scored by its text alone, and a post without text
(NaN text probability) by its image alone, so no post drops out of the evaluation; the
counts are reported beside the results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from drugjax.metrics import METRICS, Summary, metrics_by_fold, summarize

DEFAULT_WEIGHT = 0.5  # the paper's "50% for the image-based classifier"
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1, ..., 1


@dataclasses.dataclass(frozen=True)
class Fused:
    """Fused probabilities and how many posts had only one modality to go on."""

    probability: np.ndarray
    scored_by_text_only: int  # image probability missing (NaN)
    scored_by_image_only: int  # text probability missing (NaN)


def _check_probability(values: Any, name: str) -> np.ndarray:
    values = np.asarray(values, np.float64).ravel()
    outside = ~np.isnan(values) & ((values < 0) | (values > 1))
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{name}[{index}] = {values[index]} is not a probability in [0, 1] (NaN marks a missing one)")
    return values


def _check_weight(weight: Any) -> float:
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"fusion weight must lie in [0, 1] (the image's share), got {weight}")
    return float(weight)


def fuse(image_probability: Any, text_probability: Any, weight: float = DEFAULT_WEIGHT) -> Fused:
    """``weight * image + (1 - weight) * text`` per post, with the missing-modality rule.

    NaN in ``image_probability`` means the post has no usable image: it gets its text
    probability. NaN in ``text_probability`` means no text: it gets its image
    probability. A post missing both is an error naming it.
    """
    weight = _check_weight(weight)
    image = _check_probability(image_probability, "image_probability")
    text = _check_probability(text_probability, "text_probability")
    if image.shape != text.shape:
        raise ValueError(f"image and text probabilities differ in length: {image.size} vs {text.size}")
    image_missing, text_missing = np.isnan(image), np.isnan(text)
    both = np.flatnonzero(image_missing & text_missing)
    if both.size:
        raise ValueError(
            f"{both.size} post(s) have neither an image nor a text probability (first: index {int(both[0])}); "
            "score them with at least one classifier or leave them out")
    fused = weight * image + (1.0 - weight) * text
    fused = np.where(image_missing, text, np.where(text_missing, image, fused))
    return Fused(fused, int(image_missing.sum()), int(text_missing.sum()))


@dataclasses.dataclass(frozen=True)
class WeightPoint:
    """Metrics of fusion at one weight, over folds (one fold when none are given)."""

    weight: float
    summary: Summary


def weight_curve(
    y_true: Any,
    image_probability: Any,
    text_probability: Any,
    folds: Any = None,
    weights: Sequence[float] = WEIGHT_GRID,
    threshold: float = 0.5,
) -> list[WeightPoint]:
    """Metrics of the fused scores at each weight (``w = 0``: text only, ``1``: image only).

    With ``folds`` (the fold of each post, see ``drugjax.data.folds``) each point
    holds the mean ± std over folds, as in Table 1; without, the metrics of all posts.
    The probabilities must be out-of-fold ones.
    """
    y_true = np.asarray(y_true).ravel()
    folds = np.zeros(len(y_true), np.int64) if folds is None else folds
    points = []
    for weight in weights:
        fused = fuse(image_probability, text_probability, weight).probability
        points.append(WeightPoint(float(weight), summarize(metrics_by_fold(y_true, fused, folds, threshold))))
    return points


def select_weight(
    y_true: Any,
    image_probability: Any,
    text_probability: Any,
    folds: Any,
    metric: str = "f1",
    weights: Sequence[float] = WEIGHT_GRID,
    threshold: float = 0.5,
) -> float:
    """The fusion weight that inner cross-validation on an outer training set picks.

    How, for one outer fold: (1) split that fold's *training* posts into inner folds
    (``drugjax.data.folds``); (2) for each inner fold, fit the image and the text
    classifier on the other inner folds and score the inner fold, giving an out-of-fold
    image and text probability for every training post; (3) pass those labels,
    probabilities and inner folds here. For each weight on the grid the fused scores are
    computed and ``metric`` is averaged over the inner folds; the weight with the best
    mean wins. Ties go to the weight nearest the paper's 0.5, then to the smaller one.

    Everything passed in comes from the outer training posts, so the outer test fold is
    never seen: the chosen weight is then applied, unchanged, to the test fold's
    predictions of the models fitted on the whole training set. ``metric`` is one of
    accuracy, precision, recall, f1, auc (default F1: the paper's summary metric, and one
    that depends on the 0.5 threshold the fused score is read at).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if folds is None or len(np.unique(np.asarray(folds))) < 2:
        raise ValueError("folds must assign the training posts to at least 2 inner folds")
    curve = weight_curve(y_true, image_probability, text_probability, folds, weights, threshold)
    scores = np.array([point.summary.mean[metric] for point in curve])
    if np.isnan(scores).all():
        raise ValueError(f"{metric} is undefined at every weight (inner folds hold one class only)")
    best = np.nanmax(scores)
    # Means of the same fold metrics in another order may differ in the last bit: a tie.
    tied = [point.weight for point, score in zip(curve, scores) if abs(score - best) <= 1e-12]
    return min(tied, key=lambda w: (abs(w - DEFAULT_WEIGHT), w))
