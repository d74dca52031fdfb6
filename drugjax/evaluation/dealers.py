"""Dealer detection with two experts (Yang & Luo 2016, Section 4) and its Table 2.

Two classifiers of the account features (:mod:`drugjax.accounts`), both scikit-learn
pipelines that standardise first (zero mean, unit variance, fitted on the training accounts):

* ``LR``: logistic regression on all nine features;
* ``LR-select``: an L1-regularised logistic regression picks the features (those whose
  standardised coefficient is above ``min_coefficient`` in absolute value: "zero or very
  small" in the paper), then a logistic regression on the kept ones.

Both weigh the classes inversely to their frequency (``class_weight="balanced"``): about
one account in eight is a dealer, and unweighted logistic regression would mostly say
"not a dealer". The decision threshold stays 0.5.

Protocol: stratified 5-fold cross-validation over the accounts (seeded). For each expert
the classifiers are trained on that expert's labels and scored against them, out of fold;
the selection is part of the pipeline, so it is fitted inside each training fold and never
sees the test accounts (``selection="nested"``, the default). Two other readings of the
paper are selectable: ``selection="holdout"`` (its "L1 regularization on hold-out data":
the selection fitted once on a stratified hold-out share of the accounts, which are then
left out of the cross-validation and its scores) and ``ground_truth="other"`` (its
caption's "each expert's annotation as the ground truth ... for the other expert": trained
on one expert's labels, scored against the other's). Precision, recall and F1 of the dealer class are computed
once on the pooled out-of-fold predictions (27 dealers in five folds leave five or six per
fold: per-fold F1 would mostly be noise). The expert rows score one expert's labels with the
other's as ground truth; agreement and Cohen's kappa say how far the two agree.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from drugjax.runtime import atomic

METHODS = ("LR", "LR-select")
EXPERTS = ("exp1", "exp2")
SELECTIONS = ("nested", "holdout")
GROUND_TRUTHS = ("own", "other")

# Table 2 of the paper, exactly: (method, expert, precision %, recall %, F1).
PAPER_TABLE2: tuple[tuple[str, str, float, float, float], ...] = (
    ("LR", "exp1", 28.8, 55.6, 0.38),
    ("LR", "exp2", 38.5, 60.6, 0.47),
    ("LR-select", "exp1", 30.6, 55.6, 0.40),
    ("LR-select", "exp2", 42.9, 63.6, 0.51),
)
PAPER_AGREEMENT = 94.0  # % of accounts on which the two experts agree (Section 4.2)
PAPER_SELECTED = ("P", "H1", "H4", "R1", "R3", "E")  # kept by the paper's L1 selection (Section 4.1)


@dataclasses.dataclass(frozen=True)
class DealerConfig:
    """The knobs of the protocol (evaluate.py's ``dealers`` keys, plus its seed)."""

    num_folds: int = 5
    l1_c: float = 0.1  # inverse strength of the L1 selection on standardised features
    min_coefficient: float = 0.01  # |coefficient| at or below this drops a feature
    c: float = 1.0  # inverse L2 strength of the final logistic regression
    seed: int = 0
    # nested: LR-select's L1 selection fitted inside each training fold; holdout: the
    # paper's, fitted once on a stratified hold-out share of the accounts that are then
    # left out of the cross-validation
    selection: str = "nested"
    holdout_fraction: float = 0.3
    # own: each expert's rows train and score on that expert's labels; other: train on
    # one expert's labels and score against the other's
    ground_truth: str = "own"


class L1Selection(SelectorMixin, BaseEstimator):
    """Keep the features whose L1-regularised, class-balanced logistic-regression coefficient
    is above ``min_coefficient`` in absolute value (on standardised input). Keeps the single
    largest one when the penalty zeroes them all: the classifier after it needs a feature,
    and "nothing informative" then shows as a poor score rather than a crash."""

    def __init__(self, c: float = 0.1, min_coefficient: float = 0.01, seed: int = 0):
        self.c = c
        self.min_coefficient = min_coefficient
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> "L1Selection":
        l1 = LogisticRegression(l1_ratio=1.0, C=self.c, solver="liblinear", class_weight="balanced",
                                random_state=self.seed)
        self.coef_ = l1.fit(x, y).coef_[0]
        self.support_ = np.abs(self.coef_) > self.min_coefficient
        if not self.support_.any():
            self.support_[int(np.argmax(np.abs(self.coef_)))] = True
        self.n_features_in_ = x.shape[1]
        return self

    def _get_support_mask(self) -> np.ndarray:
        return self.support_


class FixedSelection(SelectorMixin, BaseEstimator):
    """Keep the features ``support`` names, chosen beforehand (the hold-out selection)."""

    def __init__(self, support: Sequence[bool] = ()):
        self.support = support

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> "FixedSelection":
        self.n_features_in_ = x.shape[1]
        return self

    def _get_support_mask(self) -> np.ndarray:
        return np.asarray(self.support, bool)


def classifier(method: str, cfg: DealerConfig = DealerConfig()) -> Pipeline:
    """A fresh, unfitted ``LR`` or ``LR-select`` pipeline."""
    lr = LogisticRegression(C=cfg.c, class_weight="balanced", max_iter=1000)
    if method == "LR":
        return Pipeline([("standardise", StandardScaler()), ("classify", lr)])
    if method == "LR-select":
        select = L1Selection(c=cfg.l1_c, min_coefficient=cfg.min_coefficient, seed=cfg.seed)
        return Pipeline([("standardise", StandardScaler()), ("select", select), ("classify", lr)])
    raise ValueError(f"unknown dealer method {method!r}; expected one of {', '.join(METHODS)}")


def kept_features(model: Pipeline, names: Sequence[str]) -> list[str]:
    """The features a fitted pipeline uses (all of them for ``LR``)."""
    if "select" not in model.named_steps:
        return list(names)
    return [n for n, keep in zip(names, model.named_steps["select"].get_support()) if keep]


def contributions(model: Pipeline, x: np.ndarray) -> np.ndarray:
    """Each feature's share of the decision score: coefficient x standardised value
    (0 for a feature the selection dropped); the rows sum to the score minus the intercept."""
    z = model.named_steps["standardise"].transform(np.asarray(x, np.float64))
    coef = np.zeros(z.shape[1])
    support = (model.named_steps["select"].get_support() if "select" in model.named_steps
               else np.ones(z.shape[1], bool))
    coef[support] = model.named_steps["classify"].coef_[0]
    return z * coef


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's kappa of two raters' binary labels: agreement beyond what their base rates
    give by chance (1 = perfect, 0 = chance). NaN when both say one class only."""
    a, b = np.asarray(a, int), np.asarray(b, int)
    observed = float(np.mean(a == b))
    chance = float(np.mean(a) * np.mean(b) + (1 - np.mean(a)) * (1 - np.mean(b)))
    return float("nan") if chance == 1 else (observed - chance) / (1 - chance)


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision and recall (%) and F1 (0-1) of the dealer class, as in Table 2."""
    return {"precision": 100 * precision_score(truth, predicted, zero_division=0),
            "recall": 100 * recall_score(truth, predicted, zero_division=0),
            "f1": float(f1_score(truth, predicted, zero_division=0))}


@dataclasses.dataclass
class Table2:
    """Measured Table 2: ``rows`` of (method, expert, precision, recall, f1); the experts'
    agreement and kappa; the features LR-select kept per expert (on all accounts) and in
    each fold; counts."""

    rows: list[dict[str, Any]]
    agreement: float
    kappa: float
    kept: dict[str, list[str]]
    kept_per_fold: dict[str, list[list[str]]]
    counts: dict[str, int]
    out_of_fold: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)


def out_of_fold_predictions(method: str, x: np.ndarray, y: np.ndarray, names: Sequence[str],
                            cfg: DealerConfig, support: np.ndarray | None = None) -> tuple[np.ndarray, list[list[str]]]:
    """Out-of-fold 0/1 predictions of ``method`` and the features each fold's model kept;
    with ``support``, LR-select keeps those features instead of selecting in each fold."""
    folds = StratifiedKFold(cfg.num_folds, shuffle=True, random_state=cfg.seed)
    predicted = np.zeros(len(y), np.int64)
    kept = []
    for train, test in folds.split(x, y):
        model = _model(method, cfg, support).fit(x[train], y[train])
        predicted[test] = model.predict(x[test])
        kept.append(kept_features(model, names))
    return predicted, kept


def _model(method: str, cfg: DealerConfig, support: np.ndarray | None) -> Pipeline:
    model = classifier(method, cfg)
    if support is not None and "select" in model.named_steps:
        model.steps[1] = ("select", FixedSelection(support))
    return model


def holdout_split(y: np.ndarray, cfg: DealerConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(held_out, scored)`` indices: a stratified share ``holdout_fraction`` of the
    accounts for the L1 selection, the rest for the cross-validation."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    held, scored = train_test_split(index, train_size=cfg.holdout_fraction, stratify=y, random_state=cfg.seed)
    return np.sort(held), np.sort(scored)


def holdout_support(x: np.ndarray, y: np.ndarray, cfg: DealerConfig) -> np.ndarray:
    """The paper's selection: the L1 fit on the hold-out accounts (standardised on them)."""
    select = L1Selection(c=cfg.l1_c, min_coefficient=cfg.min_coefficient, seed=cfg.seed)
    return Pipeline([("standardise", StandardScaler()), ("select", select)]).fit(x, y)["select"].get_support()


def _check_classes(expert: str, y: np.ndarray, folds: int, what: str) -> None:
    if y.sum() < folds or (len(y) - y.sum()) < folds:
        raise ValueError(f"{expert} labels {int(y.sum())} of {len(y)} {what} accounts as dealers; "
                         f"{folds}-fold cross-validation needs at least {folds} of each class")


def table2(x: np.ndarray, expert1: Sequence[int | None], expert2: Sequence[int | None], names: Sequence[str],
           cfg: DealerConfig = DealerConfig()) -> Table2:
    """Run the protocol (module docstring; ``cfg.selection`` and ``cfg.ground_truth`` pick
    the reading). Accounts an expert has not judged (None) are left out of that expert's
    rows and of the agreement, and counted."""
    if cfg.selection not in SELECTIONS or cfg.ground_truth not in GROUND_TRUTHS:
        raise ValueError(f"dealers.selection must be one of {SELECTIONS} and dealers.ground_truth one of "
                         f"{GROUND_TRUTHS}; got {cfg.selection!r}, {cfg.ground_truth!r}")
    x = np.asarray(x, np.float64)
    labels = {"exp1": list(expert1), "exp2": list(expert2)}
    rows, kept, kept_per_fold, oof = [], {}, {}, {}
    counts = {"accounts": len(x)}
    for expert, values in labels.items():
        judged = np.array([v is not None for v in values])
        counts[f"{expert}_judged"] = int(judged.sum())
        counts[f"{expert}_dealers"] = int(sum(int(v) for v in values if v is not None))
        truth_values = values
        if cfg.ground_truth == "other":  # trained on this expert, scored against the other one
            truth_values = labels["exp2" if expert == "exp1" else "exp1"]
            judged &= np.array([v is not None for v in truth_values])
        y = np.array([int(v) if v is not None else 0 for v in values])[judged]
        truth = np.array([int(v) if v is not None else 0 for v in truth_values])[judged]
        _check_classes(expert, y, cfg.num_folds, "judged")
        rows_x, scored, support = x[judged], np.arange(len(y)), None
        if cfg.selection == "holdout":
            held, scored = holdout_split(y, cfg)
            support = holdout_support(rows_x[held], y[held], cfg)
            counts[f"{expert}_held_out"] = len(held)
            _check_classes(expert, y[scored], cfg.num_folds, "cross-validated")
        for method in METHODS:
            predicted, folds_kept = out_of_fold_predictions(method, rows_x[scored], y[scored], names, cfg, support)
            rows.append({"method": method, "expert": expert, **scores(truth[scored], predicted)})
            oof[f"{method}/{expert}"] = predicted
            if method == "LR-select":
                kept_per_fold[expert] = folds_kept
                final = _model(method, cfg, support).fit(rows_x[scored], y[scored]) if support is not None else \
                    classifier(method, cfg).fit(rows_x, y)
                kept[expert] = kept_features(final, names)
    both = np.array([a is not None and b is not None for a, b in zip(*labels.values())])
    e1 = np.array([int(v) for v, k in zip(labels["exp1"], both) if k])
    e2 = np.array([int(v) for v, k in zip(labels["exp2"], both) if k])
    counts["both_judged"] = int(both.sum())
    # each expert scored with the other as ground truth (the paper's "competitive with experts")
    rows.append({"method": "Expert 2", "expert": "exp1", **scores(e1, e2)})
    rows.append({"method": "Expert 1", "expert": "exp2", **scores(e2, e1)})
    return Table2(rows, 100 * float(np.mean(e1 == e2)) if len(e1) else float("nan"), cohen_kappa(e1, e2),
                  kept, kept_per_fold, counts, oof)


def protocol_note(cfg: DealerConfig) -> str:
    """What table2.md says of the protocol it ran."""
    selection = ("the L1 selection fitted inside each training fold (nested)" if cfg.selection == "nested" else
                 f"the L1 selection fitted once on a stratified hold-out {cfg.holdout_fraction:.0%} of the judged "
                 "accounts (the paper's), which are then left out of the cross-validation and of the scores")
    truth = ("each expert's rows train and score on that expert's labels" if cfg.ground_truth == "own" else
             "each expert's rows train on that expert's labels and score against the other expert's "
             "(accounts both judged)")
    return f"dealers.selection={cfg.selection}: {selection}; dealers.ground_truth={cfg.ground_truth}: {truth}"


# --------------------------------------------------------------------------- files
def _paper_row(method: str, expert: str) -> tuple[float, float, float] | None:
    for m, e, p, r, f in PAPER_TABLE2:
        if (m, e) == (method, expert):
            return p, r, f
    return None


def format_table2_markdown(table: Table2) -> str:
    """Table 2 beside the paper's numbers (paper cells "—" where the paper has no row)."""
    lines = ["| Method | Expert ID | Precision | Recall | F1-score | paper Precision | paper Recall | paper F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table.rows:
        paper = _paper_row(row["method"], row["expert"])
        cells = [f"{paper[0]:.1f}", f"{paper[1]:.1f}", f"{paper[2]:.2f}"] if paper else ["—"] * 3
        lines.append(f"| {row['method']} | {row['expert']} | {row['precision']:.1f} | {row['recall']:.1f} | "
                     f"{row['f1']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", f"Experts agree on {table.agreement:.1f} % of accounts (paper: {PAPER_AGREEMENT:.0f} %), "
              f"Cohen's kappa {table.kappa:.2f}.",
              "LR-select kept " + "; ".join(f"{e}: {', '.join(k) or 'nothing'}" for e, k in table.kept.items())
              + f" (paper: {', '.join(PAPER_SELECTED)})."]
    return "\n".join(lines)


def write_table2(table: Table2, out_dir: str | Path, notes: Sequence[str] = ()) -> dict[str, Path]:
    """``table2.md`` (with ``notes`` below it), ``table2.csv`` and ``table2.json`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"table2_md": out_dir / "table2.md", "table2_csv": out_dir / "table2.csv",
             "table2_json": out_dir / "table2.json"}
    atomic.write_text(files["table2_md"], "# Table 2: dealer detection with two experts\n\n"
                      + format_table2_markdown(table) + "\n" + "".join(f"\n{n}" for n in notes) + "\n")
    with atomic.replacing(files["table2_csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "expert", "precision", "recall", "f1", "paper_precision", "paper_recall",
                         "paper_f1"])
        for row in table.rows:
            paper = _paper_row(row["method"], row["expert"])
            writer.writerow([row["method"], row["expert"], f"{row['precision']:.4f}", f"{row['recall']:.4f}",
                             f"{row['f1']:.4f}", *(("", "", "") if paper is None else paper)])
    doc = {"rows": table.rows, "agreement": table.agreement, "kappa": table.kappa, "kept": table.kept,
           "kept_per_fold": table.kept_per_fold, "counts": table.counts,
           "paper": {"rows": [dict(zip(("method", "expert", "precision", "recall", "f1"), r)) for r in PAPER_TABLE2],
                     "agreement": PAPER_AGREEMENT, "selected": list(PAPER_SELECTED)}}
    atomic.write_text(files["table2_json"], json.dumps(doc, indent=1, allow_nan=True) + "\n")
    return files
