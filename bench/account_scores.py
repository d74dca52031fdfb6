"""How well the account stage separates the dealers: figures for docs/accounts.md.

    python bench/account_scores.py --run runs/evaluate/NAME [--review REVIEW_DIR --root ROOT]

For an evaluate.py run: the AUC of P alone (each account's share of drug-related posts)
against expert 1's labels. For a detect review of ROOT: the average precision of its
dealer ranking against expert 1 (accounts.jsonl's labels; accounts without a timeline,
unscored, count as ranked last) and how many of the top 20 are expert 1's dealers.
Run it on a run with ``dealers.post_scores=fusion`` and one with ``text`` (and detect with
and without ``--text-only``) to compare the two ways of scoring timeline posts.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def p_auc(run: Path) -> float:
    with (run / "account_features.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["expert1"] in ("0", "1")]
    return float(roc_auc_score([int(r["expert1"]) for r in rows], [float(r["P"]) for r in rows]))


def ranking_quality(review: Path, root: Path, top: int = 20) -> tuple[float, int, int]:
    """(average precision, dealers in the top ``top``, dealers judged) of review.csv's order."""
    experts = {}
    with (root / "accounts.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("expert1") is not None:
                experts[record["username"]] = int(record["expert1"])
    with (review / "review.csv").open(newline="", encoding="utf-8") as f:
        ranked = [r["account"] for r in csv.DictReader(f) if r["status"] == "scored"]
    order = ranked + sorted(set(experts) - set(ranked))  # unscored accounts last
    labels = np.array([experts.get(name, 0) for name in order])
    scores = -np.arange(len(order), dtype=np.float64)  # rank order as the score
    return float(average_precision_score(labels, scores)), int(labels[:top].sum()), int(labels.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="an evaluate.py run directory")
    parser.add_argument("--review", type=Path, help="a python -m drugjax.detect output folder")
    parser.add_argument("--root", type=Path, help="the ROOT the review read (for expert 1's labels)")
    args = parser.parse_args(argv)
    print(f"{args.run}: AUC of P alone against expert 1: {p_auc(args.run):.3f}")
    if args.review is not None:
        if args.root is None:
            parser.error("--review needs --root")
        ap, top, dealers = ranking_quality(args.review, args.root)
        print(f"{args.review}: average precision of the dealer ranking {ap:.3f}; {top} of the top 20 are "
              f"expert 1's dealers ({dealers} in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
