"""Where each post classifier's errors fall on the timelines, and what that does to P.

    python bench/timeline_errors.py --run runs/evaluate/NAME [evaluate.py overrides ...]

Scores every timeline post of the evaluate run's data with the run's saved models — the
Combined text model alone and late fusion of picture and text — and prints, per scorer:
the share of timeline posts called drug-related at 0.5; on the timeline posts that carry
a label (out of fold: Table 1's predictions.csv), the true- and false-positive rates; the false-positive rate among the labelled
non-drug posts of expert 1's dealers and of the other judged accounts; and the AUC of P
against expert 1, as drugjax computes P (the share of posts at or above 0.5) and as the
mean probability. Pass the overrides the run was made with (e.g. ``data.preset=small``);
the picture features come from evaluate.py's cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score


def scores(run: Path, overrides: list[str]):
    """(timeline posts' labels (-1: none), {scorer: (probabilities, those P reads)}, judged
    accounts' expert 1 labels, the indices of their timeline posts)."""
    from hydra import compose, initialize_config_module

    from drugjax.evaluation.account_protocol import load_account_records, out_of_fold_probabilities
    from drugjax.evaluation.config import register_configs, to_config, train_config
    from drugjax.evaluation.protocol import load_models
    from drugjax.evaluation.timelines import fused_probabilities, timeline_features
    from drugjax.training import inputs

    register_configs()
    with initialize_config_module("drugjax.conf", version_base=None):
        config = to_config(compose("evaluate", overrides=overrides))
    sources = inputs.load_sources(train_config(config))
    accounts = load_account_records(sources["accounts"])
    models = load_models(run / "models")
    posts = list({str(p["id"]): p for a in accounts for p in a.get("timeline") or []}.values())
    fused, _ = fused_probabilities(models, timeline_features(config, sources["accounts"]), posts)
    ids = [str(p["id"]) for p in posts]
    saved = {"text model alone": np.asarray(models.text_probability(posts), float),
             "late fusion": np.array([fused[i] for i in ids])}
    # A labelled post is a training post of the saved models: its out-of-fold probability
    # (Table 1's predictions.csv) instead, of the same scorer for the error rates, of late
    # fusion for P (as evaluate.py reads P in either mode).
    column = {"text model alone": "combined", "late fusion": "late_fusion"}
    by_scorer = {name: (_with_out_of_fold(ids, p, out_of_fold_probabilities(run / "predictions.csv", column[name])),
                        _with_out_of_fold(ids, p, out_of_fold_probabilities(run / "predictions.csv")))
                 for name, p in saved.items()}
    index = {pid: k for k, pid in enumerate(ids)}
    judged = [a for a in accounts if a.get("expert1") is not None]
    dealer = np.array([int(a["expert1"]) for a in judged])
    timelines = [[index[str(p["id"])] for p in a.get("timeline") or []] for a in judged]
    labels = np.array([-1 if p.get("drug") is None else int(p["drug"]) for p in posts])
    return labels, by_scorer, dealer, timelines


def _with_out_of_fold(ids: list[str], probability: np.ndarray, known: dict[str, float]) -> np.ndarray:
    return np.array([known.get(pid, q) for pid, q in zip(ids, probability)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="an evaluate.py run directory (its models/)")
    parser.add_argument("overrides", nargs="*", help="evaluate.py overrides the run was made with")
    args = parser.parse_args(argv)
    labels, by_scorer, dealer, timelines = scores(args.run, args.overrides)
    labelled = labels >= 0
    print(f"command: python bench/timeline_errors.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"{len(labels)} timeline posts, {labelled.sum()} labelled ({(labels == 1).sum()} drug-related); "
          f"{len(dealer)} accounts judged by expert 1, {dealer.sum()} dealers")
    print()
    print("| scorer | called drug-related at 0.5 | labelled posts: TPR / FPR | FPR on labelled non-drug posts: "
          "dealers' / others' timelines | AUC of P vs expert 1: share >= 0.5 / mean probability |")
    print("|---|---|---|---|---|")
    for name, (p, p_as_evaluate_reads_it) in by_scorer.items():
        called = p >= 0.5
        tpr, fpr = called[labels == 1].mean(), called[labels == 0].mean()
        negatives = [[k for k in ks if labels[k] == 0] for ks in timelines]
        fp_rate = {group: np.mean([called[ks].mean() for ks, d in zip(negatives, dealer) if d == group and ks])
                   for group in (1, 0)}
        q = p_as_evaluate_reads_it
        share = [(q[ks] >= 0.5).mean() if ks else 0.0 for ks in timelines]
        mean = [q[ks].mean() if ks else 0.0 for ks in timelines]
        print(f"| {name} | {called.mean():.1%} | {tpr:.2f} / {fpr:.3f} | {fp_rate[1]:.3f} / {fp_rate[0]:.3f} | "
              f"{roc_auc_score(dealer, share):.3f} / {roc_auc_score(dealer, mean):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
