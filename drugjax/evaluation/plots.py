"""Figures of the post-recognition protocol: ROC and precision-recall curves of Table 1's
methods (out-of-fold probabilities of all folds pooled), and late fusion against its
weight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from drugjax.runtime import atomic


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
    base_rate = float(np.mean(labels))
    ax.axhline(base_rate, color="grey", linestyle=":", linewidth=1,
               label=f"share of drug-related posts ({base_rate:.2f}): a random scorer")
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
    with atomic.replacing(path) as f:
        fig.savefig(f, format="png", dpi=120)
    _pyplot().close(fig)
    return path


# --------------------------------------------------------------------------- Figure 5
# One size for the four panels (660 x 480 px at the dpi of _save), shown side by side.
FIGURE5_SIZE = (5.5, 4)


def _groups(dealer: np.ndarray, judge: str) -> list[tuple[str, np.ndarray]]:
    """Dealers and the rest as ``judge`` (e.g. "expert 1") labelled them, with their counts."""
    dealer = np.asarray(dealer, bool)
    return [(f"dealers, {judge} ({int(dealer.sum())})", dealer),
            (f"non-dealers, {judge} ({int((~dealer).sum())})", ~dealer)]


def _histograms(ax, values: np.ndarray, dealer: np.ndarray, judge: str, bins: np.ndarray) -> None:
    """Each group's histogram normalised to its own size (the groups differ eightfold),
    the two bars of a bin side by side: no overlap drawn in a colour the legend lacks."""
    groups = _groups(dealer, judge)
    ax.hist([values[mask] for _, mask in groups], bins=bins, label=[label for label, _ in groups],
            weights=[np.full(int(mask.sum()), 1 / max(int(mask.sum()), 1)) for _, mask in groups])


def drug_share_histogram(path: Path, share: np.ndarray, dealer: np.ndarray, judge: str = "expert 1") -> Path:
    """Figure 5a: each account's share of drug-related posts, dealers against the rest."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGURE5_SIZE)
    _histograms(ax, np.asarray(share, np.float64), dealer, judge, np.linspace(0, 1, 21))
    ax.set(xlabel="share of the timeline's posts classified drug-related", ylabel="share of accounts",
           title="Figure 5a: drug-related post share")
    return _save(fig, ax, path, "upper right")


def drug_posts_by_hour(path: Path, hours: np.ndarray, dealer: np.ndarray, judge: str = "expert 1") -> Path:
    """Figure 5b: drug-related posts by hour of day (post's own offset), as a share of each
    group's drug-related posts; the H1-H4 bins shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGURE5_SIZE)
    for i, (label, mask) in enumerate(_groups(dealer, judge)):
        counts = np.asarray(hours)[mask].sum(axis=0)
        ax.bar(np.arange(24) + (i - 0.5) * 0.4, counts / max(counts.sum(), 1), width=0.4, label=label)
    for lo in (6, 18):
        ax.axvspan(lo - 0.5, lo + 5.5, color="grey", alpha=0.08)
    ax.set(xlabel="hour of day (H1 0-5, H2 6-11, H3 12-17, H4 18-23)", ylabel="share of drug-related posts",
           xticks=range(0, 24, 3), title="Figure 5b: when drug-related posts are posted")
    return _save(fig, ax, path, "upper center")


def following_ratio(path: Path, following: np.ndarray, followers: np.ndarray, dealer: np.ndarray,
                    judge: str = "expert 1") -> Path:
    """Figure 5c: following / max(followers, 1) per account, log scale over the data's range,
    dealers against the rest (a ratio of 0, following nobody, is drawn in the lowest bin)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGURE5_SIZE)
    ratio = np.asarray(following, np.float64) / np.maximum(np.asarray(followers, np.float64), 1)
    positive = ratio[ratio > 0]
    lo, hi = (np.log10(positive.min()), np.log10(positive.max())) if positive.size else (-1.0, 1.0)
    bins = np.logspace(np.floor(lo * 2) / 2, np.ceil(hi * 2) / 2 + 1e-9, 25)  # the data's range, half decades
    _histograms(ax, np.clip(ratio, bins[0], bins[-1]), dealer, judge, bins)
    ax.set_xscale("log")
    ax.set(xlabel="following / followers", ylabel="share of accounts", title="Figure 5c: relational information")
    return _save(fig, ax, path, "upper right")


def evidence_share(path: Path, evidence: np.ndarray, dealer: np.ndarray, judge: str = "expert 1") -> Path:
    """Figure 5d: share of accounts with transaction evidence (E), dealers against the rest."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGURE5_SIZE)
    for i, (label, mask) in enumerate(_groups(dealer, judge)):
        share = float(np.mean(np.asarray(evidence)[mask])) if mask.any() else 0.0
        ax.bar([i], [share], color=f"C{i}", label=label)
        ax.annotate(f"{100 * share:.0f} %", (i, share), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom")
    ax.set(ylabel="share of accounts with evidence", ylim=(0, 1.15), xticks=[0, 1],
           xticklabels=["dealers", "non-dealers"], title="Figure 5d: evidence of transactions")
    return _save(fig, ax, path, "upper right")
