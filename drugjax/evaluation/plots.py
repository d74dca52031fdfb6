"""Figures of the post-recognition protocol: ROC and precision-recall curves of Table 1's
methods (out-of-fold probabilities of all folds pooled), and late fusion against its
weight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn import metrics as skm


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scored(labels: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(probability)  # posts a method could not score (no image)
    return np.asarray(labels)[keep], np.asarray(probability)[keep]


def roc_curves(path: Path, labels: np.ndarray, scores: Mapping[str, np.ndarray]) -> Path:
    """ROC curve of each method, its pooled AUC in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, probability in scores.items():
        y, p = _scored(labels, probability)
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{method} (AUC {skm.roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title="Drug-related posts: ROC (out-of-fold, folds pooled)")
    return _save(fig, ax, path, "lower right")


def precision_recall_curves(path: Path, labels: np.ndarray, scores: Mapping[str, np.ndarray]) -> Path:
    """Precision against recall of each method, its average precision in the legend, and
    the share of drug-related posts (a random scorer's precision)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, probability in scores.items():
        y, p = _scored(labels, probability)
        precision, recall, _ = skm.precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{method} (AP {skm.average_precision_score(y, p):.3f})")
    ax.axhline(float(np.mean(labels)), color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
           title="Drug-related posts: precision-recall")
    return _save(fig, ax, path, "lower left")


def fusion_weight_curve(path: Path, curve: Sequence, weight: float) -> Path:
    """F1, AUC and accuracy of late fusion (mean ± std over folds) against the image's weight."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    weights = np.asarray([point.weight for point in curve])
    for metric, label in (("f1", "F1"), ("auc", "AUC"), ("accuracy", "accuracy")):
        mean = np.asarray([point.summary.mean[metric] for point in curve])
        std = np.asarray([point.summary.std[metric] for point in curve])
        ax.plot(weights, mean, marker="o", label=label)
        ax.fill_between(weights, mean - std, mean + std, alpha=0.2)
    ax.axvline(weight, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="weight of the image classifier (0: text only, 1: image only)", ylabel="out-of-fold, mean ± std",
           ylim=(0, 1), title="Late fusion against its weight")
    return _save(fig, ax, path, "lower left")


def _save(fig, ax, path: Path, legend: str) -> Path:
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path
