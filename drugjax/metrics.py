"""Metrics of binary post scores, per fold and aggregated over folds (mean ± std).

At the bottom of the package (numpy and scikit-learn only): the trainer's validation, the
sweep engine, late fusion and the evaluation protocols all score with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

METRICS = ("accuracy", "precision", "recall", "f1", "auc")
# What summaries aggregate: the metrics plus the trivial baseline printed beside accuracy.
SUMMARY_METRICS = METRICS + ("all_negative_accuracy",)


def binary_metrics(y_true: Any, prob: Any, threshold: float = 0.5, zero_division: float = 0.0) -> dict[str, float]:
    """Accuracy, precision, recall, F1 of the positive class at ``threshold``, ROC AUC.

    A post is called positive when its probability is ``>= threshold``. Also returns
    ``all_negative_accuracy`` (the accuracy of calling every post negative: the share of
    negatives, the baseline any accuracy must beat), ``n`` and ``positives``.

    A ratio with nothing to divide by (precision when nothing is called positive, recall
    without positive posts, F1 when both) is ``zero_division``: 0 by default, as the
    trainer's validation has always reported; :func:`metrics_by_fold` passes NaN so that
    an undefined value is not averaged in as a real 0. AUC is NaN when the labels hold
    one class only: it is undefined there, and :func:`summarize` notes it rather than
    failing the whole evaluation.
    """
    y_true = np.asarray(y_true).ravel()
    prob = np.asarray(prob, np.float64).ravel()
    if y_true.shape != prob.shape:
        raise ValueError(f"labels and scores differ in length: {y_true.shape} vs {prob.shape}")
    if y_true.size == 0:
        raise ValueError("no examples to score: the labels are empty (check the fold and the data)")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(np.unique(y_true).tolist()) - {0, 1})[:5]}")
    if not np.isfinite(prob).all():
        index = int(np.flatnonzero(~np.isfinite(prob))[0])
        raise ValueError(f"scores must be finite, example {index} is {prob[index]}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    y_true = y_true.astype(int)
    pred = (prob >= threshold).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "precision": float(skm.precision_score(y_true, pred, zero_division=zero_division)),
        "recall": float(skm.recall_score(y_true, pred, zero_division=zero_division)),
        "f1": float(skm.f1_score(y_true, pred, zero_division=zero_division)),
        "auc": float(skm.roc_auc_score(y_true, prob)) if len(np.unique(y_true)) == 2 else math.nan,
        "all_negative_accuracy": float(np.mean(y_true == 0)),
        "n": int(y_true.size),
        "positives": int(y_true.sum()),
    }


def metrics_by_fold(y_true: Any, prob: Any, folds: Any, threshold: float = 0.5) -> list[dict[str, float]]:
    """:func:`binary_metrics` of each fold's posts, in fold order (0, 1, ...).

    ``folds[i]`` is the fold in which post ``i`` was tested (see
    ``drugjax.data.folds``); ``prob`` holds out-of-fold probabilities. A metric
    undefined in a fold is NaN there (for :func:`summarize` to leave out and note).
    """
    y_true, prob, folds = np.asarray(y_true).ravel(), np.asarray(prob).ravel(), np.asarray(folds).ravel()
    if not len(y_true) == len(prob) == len(folds):
        raise ValueError(f"labels, scores and folds differ in length: {len(y_true)}, {len(prob)}, {len(folds)}")
    return [binary_metrics(y_true[folds == f], prob[folds == f], threshold, zero_division=math.nan)
            for f in np.unique(folds)]


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean and standard deviation of each metric over folds.

    ``std`` is the population standard deviation (numpy's default, ddof=0), as
    ``cross_validate(...)["test_score"].std()`` gives. A metric undefined in some folds
    (AUC with one class, recall without positives) is averaged over the others and named
    in ``notes``.
    """

    mean: dict[str, float]
    std: dict[str, float]
    n_folds: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return jsonable({"mean": self.mean, "std": self.std, "n_folds": self.n_folds, "notes": list(self.notes)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Summary":
        """The inverse of :meth:`to_dict` (None becomes NaN)."""
        def floats(values: Mapping[str, Any]) -> dict[str, float]:
            return {k: math.nan if v is None else float(v) for k, v in values.items()}

        return cls(floats(data["mean"]), floats(data["std"]), int(data["n_folds"]), tuple(data.get("notes", ())))


_UNDEFINED_WHEN = {
    "auc": "one class only",
    "precision": "no post called positive",
    "recall": "no positive posts",
    "f1": "no positive posts and none called positive",
}


def summarize(per_fold: Sequence[Mapping[str, float]], names: Sequence[str] = SUMMARY_METRICS) -> Summary:
    """Mean ± std over folds of each metric in ``names`` (dicts from :func:`binary_metrics`)."""
    if not per_fold:
        raise ValueError("no folds to summarise: give at least one fold's metrics")
    mean, std, notes = {}, {}, []
    for name in names:
        values = np.array([fold[name] for fold in per_fold], np.float64)
        defined = np.isfinite(values)
        why = _UNDEFINED_WHEN.get(name, "undefined")
        if not defined.any():
            mean[name] = std[name] = math.nan
            notes.append(f"{name} undefined in every fold ({why})")
            continue
        if not defined.all():
            missing = ", ".join(str(i) for i in np.flatnonzero(~defined))
            notes.append(f"{name} undefined in fold(s) {missing} ({why}); "
                         f"mean over the other {int(defined.sum())} fold(s)")
        mean[name] = float(values[defined].mean())
        std[name] = float(values[defined].std())
    return Summary(mean, std, len(per_fold), tuple(notes))


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN/inf as None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {k: jsonable(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(x) for x in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
