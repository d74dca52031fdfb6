"""Evaluation utilities: metrics and their aggregation, folds, out-of-fold predictions,
Table 1 files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from drugjax.data import fold_of
from drugjax.synthetic import world
from drugjax.data.folds import account_folds, id_folds, out_of_fold_probability, splits, stratified_folds
from drugjax.metrics import Summary, binary_metrics, metrics_by_fold, summarize
from drugjax.evaluation.tables import (
    PAPER_TABLE1_AS_PRINTED, TABLE1_METHODS, Table1, format_table1_markdown, paper_table1, read_table1,
    write_table1)

# --------------------------------------------------------------------------- metrics


def test_binary_metrics_values_and_threshold():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    m = binary_metrics(y, p)
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == pytest.approx((3 / 5, 1 / 2, 1 / 2, 1 / 2))
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["all_negative_accuracy"] == pytest.approx(3 / 5)
    high = binary_metrics(y, p, threshold=0.7)  # only 0.9 is called positive
    assert (high["precision"], high["recall"], high["accuracy"]) == pytest.approx((1.0, 0.5, 4 / 5))
    assert high["auc"] == m["auc"]  # AUC does not depend on the threshold


def test_one_class_fold_gives_nan_auc_and_a_note():
    y = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    p = np.array([0.1, 0.6, 0.8, 0.7, 0.2, 0.3, 0.4, 0.1])
    folds = np.array([0, 0, 0, 0, 1, 1, 2, 2])  # folds 1 and 2 hold negatives only
    per_fold = metrics_by_fold(y, p, folds)
    assert math.isnan(per_fold[1]["auc"]) and math.isnan(per_fold[2]["auc"])
    # recall (no positives) and precision (none called positive) are undefined there too
    assert math.isnan(per_fold[1]["recall"]) and math.isnan(per_fold[1]["precision"])
    summary = summarize(per_fold)
    assert summary.mean["auc"] == pytest.approx(per_fold[0]["auc"])
    assert summary.mean["recall"] == pytest.approx(per_fold[0]["recall"])  # not averaged with a fake 0
    assert summary.mean["accuracy"] == pytest.approx(np.mean([m["accuracy"] for m in per_fold]))
    assert summary.n_folds == 3
    assert "auc undefined in fold(s) 1, 2 (one class only); mean over the other 1 fold(s)" in summary.notes
    assert "recall undefined in fold(s) 1, 2 (no positive posts); mean over the other 1 fold(s)" in summary.notes


def test_binary_metrics_zero_division_default_is_zero():
    # The trainer's validation contract: nothing called positive gives precision 0, not NaN.
    m = binary_metrics([0, 1, 0], [0.1, 0.2, 0.3])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_summarize_is_mean_and_population_std():
    per_fold = [{"accuracy": a, "auc": b} for a, b in [(0.8, 0.9), (0.6, 0.7), (0.7, 0.95)]]
    summary = summarize(per_fold, names=("accuracy", "auc"))
    assert summary.mean["accuracy"] == pytest.approx(0.7)
    assert summary.std["accuracy"] == pytest.approx(np.std([0.8, 0.6, 0.7]))
    assert summary.notes == ()


@pytest.mark.parametrize("y, p, match", [
    ([], [], "no examples to score"),
    ([0, 2], [0.1, 0.2], "labels must be 0 or 1"),
    ([0, 1], [0.1, float("nan")], "scores must be finite, example 1"),
    ([0, 1], [0.1], "differ in length"),
])
def test_binary_metrics_bad_input(y, p, match):
    with pytest.raises(ValueError, match=match):
        binary_metrics(y, p)


# --------------------------------------------------------------------------- folds


def _labels(n=203, share=0.26, seed=0):
    return (np.random.default_rng(seed).random(n) < share).astype(int)


def test_stratified_folds_partition_and_stratify():
    y = _labels()
    folds = stratified_folds(y, n_splits=5, seed=0)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]  # every post in exactly one fold
    tests = [test for _, test in splits(folds)]
    assert sorted(np.concatenate(tests)) == list(range(len(y)))
    for train, test in splits(folds):
        assert not set(train) & set(test)
    positives = [int(y[folds == f].sum()) for f in range(5)]
    assert max(positives) - min(positives) <= 1  # stratified: positives spread evenly
    np.testing.assert_array_equal(folds, stratified_folds(y, n_splits=5, seed=0))
    assert not np.array_equal(folds, stratified_folds(y, n_splits=5, seed=1))


def test_account_folds_keep_accounts_together():
    posts, *_ = world.plan("small", seed=0)
    y = np.array([p["drug"] for p in posts])
    accounts = [p["account"] for p in posts]
    folds = account_folds(y, accounts, n_splits=5, seed=0)
    fold_of_account: dict[str, set] = {}
    for account, fold in zip(accounts, folds):
        fold_of_account.setdefault(account, set()).add(int(fold))
    assert all(len(f) == 1 for f in fold_of_account.values())
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    shares = [y[folds == f].mean() for f in range(5)]
    assert max(shares) - min(shares) < 0.05  # as stratified as whole accounts allow (measured 0.01)
    np.testing.assert_array_equal(folds, account_folds(y, accounts, n_splits=5, seed=0))


def test_id_folds_are_the_trainers():
    ids = [f"p{i:06d}" for i in range(50)]
    assert list(id_folds(ids)) == [fold_of(i) for i in ids]


def test_folds_bad_input():
    with pytest.raises(ValueError, match="3 positive posts, fewer than n_splits=5"):
        stratified_folds([1, 1, 1] + [0] * 20, n_splits=5)
    with pytest.raises(ValueError, match="only 2 distinct accounts"):
        account_folds([0, 1] * 10, ["a", "b"] * 10, n_splits=5)
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        stratified_folds(_labels(), n_splits=1)


class _RemembersTraining(ClassifierMixin, BaseEstimator):
    """Scores 1 for a post it was trained on and 0 otherwise: shows a leak at once."""

    def fit(self, X, y):
        self.seen_ = {id(x) for x in X}
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        seen = np.array([float(id(x) in self.seen_) for x in X])
        return np.column_stack([1 - seen, seen])


def test_out_of_fold_probability_never_scores_a_training_post():
    y = _labels(60)
    posts = [{"i": i} for i in range(60)]
    probability = out_of_fold_probability(_RemembersTraining(), posts, y, stratified_folds(y, 5))
    np.testing.assert_array_equal(probability, np.zeros(60))


# --------------------------------------------------------------------------- Table 1


def test_paper_numbers_as_printed():
    # Table 1 of the paper, copied from its text.
    assert PAPER_TABLE1_AS_PRINTED["Late fusion"] == (88.1, 83.1, 68.1, 0.75)
    assert PAPER_TABLE1_AS_PRINTED["Combined"] == (81.7, 63.6, 70.0, 0.67)
    assert tuple(PAPER_TABLE1_AS_PRINTED) == TABLE1_METHODS
    assert paper_table1()["MLP"]["accuracy"] == 0.869 and paper_table1()["MLP"]["f1"] == 0.72
    assert math.isnan(paper_table1()["MLP"]["auc"])


def _table() -> Table1:
    rng = np.random.default_rng(0)
    rows = {}
    for method in ("Late fusion", "Tags only", "Combined"):  # not in the paper's order on purpose
        y = (rng.random(100) < 0.3).astype(int)
        p = np.clip(0.3 * y + rng.random(100) * 0.7, 0, 1)
        folds = np.arange(100) % 5
        if method == "Combined":
            y[folds == 2] = 0  # one fold without positives: AUC NaN there, noted
        rows[method] = summarize(metrics_by_fold(y, p, folds))
    return Table1(rows)


def test_table1_round_trips_through_json_and_csv(tmp_path):
    table = _table()
    paths = write_table1(table, tmp_path / "report")
    assert {p.name for p in paths.values()} == {"table1.md", "table1.csv", "table1.json"}
    assert list(table.rows) == ["Tags only", "Combined", "Late fusion"]  # the paper's order
    assert table.rows["Combined"].notes
    for path in (paths["json"], paths["csv"]):
        back = read_table1(path)
        assert list(back.rows) == list(table.rows)
        for method, summary in table.rows.items():
            got = back.rows[method]
            assert got.n_folds == summary.n_folds and got.notes == summary.notes
            for name in summary.mean:
                np.testing.assert_equal(got.mean[name], summary.mean[name])  # exact, NaN == NaN
                np.testing.assert_equal(got.std[name], summary.std[name])
    document = json.loads(paths["json"].read_text())
    assert document["rows"][0]["paper"]["recall"] == 0.62


def test_table1_markdown_shows_paper_and_baseline():
    text = format_table1_markdown(_table())
    assert "| Tags only | " in text and "82.2 / 67.2 / 62.0 / 0.65" in text
    assert "All-negative (%)" in text
    assert "- Combined: auc undefined in fold(s) 2 (one class only)" in text


def test_table1_rejects_unknown_methods(tmp_path):
    with pytest.raises(ValueError, match="unknown Table 1 method"):
        Table1({"SVM": Summary({}, {}, 5)})
    with pytest.raises(ValueError, match="expected table1.json or table1.csv"):
        read_table1(tmp_path / "table1.md")
