"""drugjax.evaluation.dealers: selection, kappa, the protocol and Table 2's layout."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from drugjax.evaluation.dealers import (PAPER_TABLE2, DealerConfig, L1Selection, classifier, cohen_kappa,
                                        contributions, format_table2_markdown, kept_features, table2, write_table2)

NAMES = ("a", "b", "c", "d", "e", "f")


def known_world(n=300, seed=0):
    """Dealers (~15 %) decided by features a and d only; b, c, e, f are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES)))
    y = (1.5 * x[:, 0] - 1.5 * x[:, 3] + 0.3 * rng.normal(size=n) > 2.0).astype(int)
    return x, y


def test_l1_selection_keeps_the_informative_features():
    x, y = known_world()
    model = classifier("LR-select", DealerConfig(l1_c=0.05)).fit(x, y)
    assert kept_features(model, NAMES) == ["a", "d"]
    assert kept_features(classifier("LR").fit(x, y), NAMES) == list(NAMES)


def test_l1_selection_never_keeps_nothing():
    x, y = known_world()
    sel = L1Selection(c=1e-6).fit(x, y)
    assert sel.get_support().sum() == 1


def test_contributions_sum_to_the_decision_score():
    x, y = known_world()
    model = classifier("LR-select", DealerConfig(l1_c=0.05)).fit(x, y)
    c = contributions(model, x[:5])
    intercept = model.named_steps["classify"].intercept_[0]
    np.testing.assert_allclose(c.sum(axis=1) + intercept, model.decision_function(x[:5]))
    assert (c[:, [1, 2, 4, 5]] == 0).all()  # dropped features contribute nothing


@pytest.mark.parametrize("seed", range(4))
def test_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    a = (rng.random(50) < 0.2).astype(int)
    b = np.where(rng.random(50) < 0.1, 1 - a, a)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_table2_rows_selection_and_experts():
    x, y = known_world()
    flip = np.zeros(len(y), int)
    flip[np.flatnonzero(y)[:3]] = 1  # expert 2 misses three dealers
    e2 = list(y - flip)
    e2[7] = None  # not judged by expert 2
    t = table2(x, list(y), e2, NAMES, DealerConfig(l1_c=0.05))
    assert [(r["method"], r["expert"]) for r in t.rows] == [
        ("LR", "exp1"), ("LR-select", "exp1"), ("LR", "exp2"), ("LR-select", "exp2"),
        ("Expert 2", "exp1"), ("Expert 1", "exp2")]
    assert t.kept["exp1"] == ["a", "d"] and all(k == ["a", "d"] for k in t.kept_per_fold["exp1"])
    assert t.rows[1]["f1"] > 0.8  # the informative features predict well out of fold
    expert2_vs_1 = t.rows[4]
    assert expert2_vs_1["precision"] == 100 and expert2_vs_1["recall"] < 100
    assert t.counts["exp2_judged"] == len(y) - 1 and t.counts["both_judged"] == len(y) - 1
    keep = np.arange(len(y)) != 7
    assert t.agreement == pytest.approx(100 * np.mean(y[keep] == (y - flip)[keep]))
    assert t.kappa == pytest.approx(cohen_kappa_score(y[keep], (y - flip)[keep]))


def test_same_seed_same_table():
    x, y = known_world()
    a, b = table2(x, list(y), list(y), NAMES), table2(x, list(y), list(y), NAMES)
    assert a.rows == b.rows and a.kept_per_fold == b.kept_per_fold


def test_too_few_dealers_is_a_clear_error():
    x, y = known_world()
    y = np.zeros_like(y)
    y[:3] = 1
    with pytest.raises(ValueError, match="exp1 labels 3 of 300 judged accounts as dealers"):
        table2(x, list(y), list(y), NAMES)


def test_table2_files_carry_the_papers_numbers(tmp_path):
    x, y = known_world()
    files = write_table2(table2(x, list(y), list(y), NAMES), tmp_path, notes=["- a note"])
    md = files["table2_md"].read_text()
    assert "| LR-select | exp2 |" in md and "| 42.9 | 63.6 | 0.51 |" in md and "- a note" in md
    rows = list(csv.DictReader(files["table2_csv"].open()))
    assert [(r["method"], r["expert"], r["paper_precision"]) for r in rows[:4]] == [
        ("LR", "exp1", "28.8"), ("LR-select", "exp1", "30.6"), ("LR", "exp2", "38.5"), ("LR-select", "exp2", "42.9")]
    doc = json.loads(files["table2_json"].read_text())
    assert [tuple(r.values()) for r in doc["paper"]["rows"]] == list(PAPER_TABLE2)
    assert "Cohen's kappa" in format_table2_markdown(table2(x, list(y), list(y), NAMES))


def test_holdout_selection_never_sees_the_accounts_it_is_scored_on(monkeypatch):
    from drugjax.evaluation import dealers

    x, y = known_world()
    seen = {}
    support = dealers.holdout_support

    def recording_support(rows, labels, cfg):
        seen.setdefault("held", []).append({tuple(r) for r in rows})
        return support(rows, labels, cfg)
    predictions = dealers.out_of_fold_predictions

    def recording_predictions(method, rows, labels, names, cfg, fixed=None):
        seen.setdefault("scored", []).append({tuple(r) for r in rows})
        return predictions(method, rows, labels, names, cfg, fixed)
    monkeypatch.setattr(dealers, "holdout_support", recording_support)
    monkeypatch.setattr(dealers, "out_of_fold_predictions", recording_predictions)
    cfg = DealerConfig(selection="holdout", holdout_fraction=0.3, l1_c=0.05)
    t = table2(x, list(y), list(y), NAMES, cfg)
    assert len(seen["held"]) == 2 and len(seen["scored"]) == 4  # per expert: one selection, LR and LR-select
    for held in seen["held"]:
        assert len(held) == 90 and all(not (held & scored) for scored in seen["scored"])
    assert t.counts["exp1_held_out"] == 90 and t.kept["exp1"] == ["a", "d"]
    assert all(kept == ["a", "d"] for kept in t.kept_per_fold["exp1"])  # fixed by the hold-out, in every fold


def test_other_ground_truth_scores_each_experts_model_against_the_other_expert():
    from drugjax.evaluation.dealers import scores

    x, y = known_world()
    rng = np.random.default_rng(1)
    other = np.where(rng.uniform(size=len(y)) < 0.1, 1 - y, y)  # an expert who disagrees on a tenth
    own = table2(x, list(y), list(other), NAMES)
    crossed = table2(x, list(y), list(other), NAMES, DealerConfig(ground_truth="other"))
    row = next(r for r in crossed.rows if r["method"] == "LR" and r["expert"] == "exp1")
    assert row == {"method": "LR", "expert": "exp1", **scores(other, crossed.out_of_fold["LR/exp1"])}
    assert np.array_equal(crossed.out_of_fold["LR/exp1"], own.out_of_fold["LR/exp1"])  # same model, other truth
    assert row != next(r for r in own.rows if r["method"] == "LR" and r["expert"] == "exp1")


def test_unknown_protocol_readings_are_refused():
    x, y = known_world()
    with pytest.raises(ValueError, match="dealers.selection must be one of"):
        table2(x, list(y), list(y), NAMES, DealerConfig(selection="fold"))
