"""The paper's account analysis and dealer detection (Sections 3 and 4): Table 2, Figure 5.

``python evaluate.py`` comes here after Table 1 (:func:`run`), with the run directory that
Table 1 filled. Read top to bottom:

1. the accounts (``accounts.jsonl`` with each timeline) from the built accounts source;
2. a probability for every timeline post: a post that is also a labelled post keeps its
   out-of-fold late-fusion probability from ``predictions.csv`` (so no model scores a post
   it was trained on); every other timeline post is scored by the saved text model
   (``models/text_combined.joblib``, fitted on the labelled posts only, which the timeline
   posts are not). The timeline posts' backbone features are not computed (tens of
   thousands of pictures); late fusion scores a post without an image by its text alone,
   and the same rule is used here;
3. the account features P, H1-H4, R1-R3, E (:mod:`drugjax.accounts`) at the run's threshold;
4. Table 2 (:mod:`drugjax.evaluation.dealers`) and Figures 5a-d (dealers by expert 1);
5. the files: ``table2.md/.csv/.json``, ``account_features.csv``, ``fig5a_drug_share.png``,
   ``fig5b_hours.png``, ``fig5c_following_ratio.png``, ``fig5d_evidence.png``, and
   ``models/dealers.joblib``: LR-select fitted on every account judged by expert 1, for
   ``python -m drugjax.detect``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.accounts import FEATURE_NAMES, AccountTable, Blacklist, account_table, with_known
from drugjax.runtime import atomic
from drugjax.runtime.textsafe import csv_cell
from drugjax.evaluation import dealers, plots
from drugjax.evaluation.config import EvaluateConfig

log = logging.getLogger(__name__)

DEALER_MODEL_FILE = "dealers.joblib"
DEPLOYED_EXPERT = "exp1"  # the saved model learns expert 1's labels (the paper's 27 dealers)


def load_account_records(source: Any) -> list[dict]:
    """The validated account records (with ``timeline``) of a built accounts source."""
    return [json.loads(source[i]["json"]) for i in range(len(source))]


def out_of_fold_probabilities(predictions_csv: str | Path, column: str = "late_fusion") -> dict[str, float]:
    """Post id -> out-of-fold probability from Table 1's ``predictions.csv``."""
    with Path(predictions_csv).open(newline="") as f:
        return {row["id"]: float(row[column]) for row in csv.DictReader(f) if row[column] != ""}


def text_probability(model: Any):
    """A post-probability function from a fitted :class:`~drugjax.text.TextClassifier`."""
    positive = list(model.classes_).index(1)

    def probability(posts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        texts = [{"tags": list(p.get("tags") or []), "caption": p.get("caption") or ""} for p in posts]
        return model.predict_proba(texts)[:, positive]

    return probability


def save_dealer_model(folder: Path, cfg: EvaluateConfig, x: np.ndarray, expert1: Sequence[int | None]) -> Path:
    """LR-select fitted on every account expert 1 judged, with what detect needs to
    compute the same features (threshold, blacklist, log_counts, how posts are scored)."""
    import joblib

    judged = np.array([v is not None for v in expert1])
    y = np.array([int(v) for v in expert1 if v is not None])
    model = dealers.classifier("LR-select", dealer_config(cfg)).fit(x[judged], y)
    path = folder / DEALER_MODEL_FILE
    saved = {"model": model, "feature_names": list(FEATURE_NAMES), "expert": DEPLOYED_EXPERT,
             "threshold": cfg.threshold, "log_counts": cfg.dealers.log_counts,
             "post_scores": cfg.dealers.post_scores,
             "evidence_sources": list(cfg.dealers.evidence_sources),
             "blacklist": str(Path(cfg.dealers.blacklist).expanduser().resolve()) if cfg.dealers.blacklist
             else None,
             "kept": dealers.kept_features(model, FEATURE_NAMES)}
    with atomic.replacing(path) as f:
        joblib.dump(saved, f)
    return path


def dealer_config(cfg: EvaluateConfig) -> dealers.DealerConfig:
    d = cfg.dealers
    return dealers.DealerConfig(num_folds=d.num_folds, l1_c=d.l1_c, min_coefficient=d.min_coefficient, c=d.c,
                                seed=cfg.seed, selection=d.selection, holdout_fraction=d.holdout_fraction,
                                ground_truth=d.ground_truth)


def write_account_features(path: Path, accounts: Sequence[Mapping[str, Any]], table: AccountTable) -> Path:
    """One row per account: username, the experts' labels, timeline size, the nine
    features, and the evidence (term: context; ...), spreadsheet-safe."""
    with atomic.replacing(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["username", "expert1", "expert2", "timeline_posts", *FEATURE_NAMES, "evidence"])
        for account, row, size, found in zip(accounts, table.features, table.timeline_sizes, table.evidence):
            label = lambda v: "" if v is None else int(v)  # noqa: E731
            writer.writerow([csv_cell(account["username"]), label(account.get("expert1")),
                             label(account.get("expert2")),
                             int(size), *(f"{v:.6g}" for v in row),
                             csv_cell("; ".join(f"{e.source}: {e.term}: {e.context}" for e in found))])
    return path


def post_probability(cfg: EvaluateConfig, workdir: Path, accounts: Sequence[Mapping[str, Any]],
                     accounts_source: Any, known: Mapping[str, float],
                     checkpoint: Any = None) -> tuple[Any, dict[str, int]]:
    """The drug probability P, H1-H4 and E read for a timeline post: its out-of-fold late
    fusion where it is a labelled post (``known``), else the saved models of Table 1 —
    late fusion of its picture and text (``dealers.post_scores=fusion``, the paper's
    classifier) or the text model alone (``text``). Returns it with how the other
    timeline posts were scored (``fusion``, ``text_only``, ``image_only``)."""
    unique = {str(p.get("id")): p for a in accounts for p in a.get("timeline") or []}
    rest = [p for pid, p in unique.items() if pid not in known]
    if cfg.dealers.post_scores == "text":
        import joblib

        text = text_probability(joblib.load(workdir / "models" / "text_combined.joblib"))
        return with_known(known, text), {"fusion": 0, "text_only": len(rest), "image_only": 0}
    from drugjax.evaluation.protocol import load_models
    from drugjax.evaluation.timelines import fused_probabilities, timeline_features

    features = timeline_features(cfg, accounts_source, checkpoint)
    fused, counts = fused_probabilities(load_models(workdir / "models"), features, rest)
    return with_known(known, lambda posts: np.array([fused[str(p.get("id"))] for p in posts])), counts


def run(cfg: EvaluateConfig, workdir: str | Path, accounts_source: Any, checkpoint: Any = None) -> dict[str, Any]:
    """Account features, Table 2, Figures 5a-d and the dealer model, from the Table 1 run
    in ``workdir`` (``checkpoint``: Table 1's backbone, when a train.py run); returns
    ``table2`` (:class:`~drugjax.evaluation.dealers.Table2`), ``files``, ``problems`` and
    ``counts``."""
    workdir = Path(workdir)
    accounts = load_account_records(accounts_source)
    known = out_of_fold_probabilities(workdir / "predictions.csv")
    blacklist = Blacklist.load(cfg.dealers.blacklist) if cfg.dealers.blacklist else Blacklist.load()
    timeline_ids = {str(p.get("id")) for a in accounts for p in a.get("timeline") or []}
    log.info("Table 2: %d accounts, %d timeline posts scored (%s), then dealer detection (%d folds) and "
             "Figures 5a-d", len(accounts), len(timeline_ids),
             "late fusion of picture and text" if cfg.dealers.post_scores == "fusion" else "text only",
             cfg.dealers.num_folds)
    probability, scored_by = post_probability(cfg, workdir, accounts, accounts_source, known, checkpoint)
    table = account_table(accounts, probability, threshold=cfg.threshold,
                          blacklist=blacklist, log_counts=cfg.dealers.log_counts,
                          evidence_sources=tuple(cfg.dealers.evidence_sources))
    expert1 = [a.get("expert1") for a in accounts]
    expert2 = [a.get("expert2") for a in accounts]
    try:
        t2 = dealers.table2(table.features, expert1, expert2, FEATURE_NAMES, dealer_config(cfg))
    except ValueError as e:  # too few dealers for the folds: the features and figures still help
        return _without_table2(cfg, workdir, accounts, table, expert1, f"Table 2 skipped: {e} (dealers.num_folds)")
    counts = {**t2.counts, "timeline_posts": int(table.timeline_sizes.sum()),
              "timeline_posts_out_of_fold": len(timeline_ids & set(known)),
              **{f"timeline_posts_by_{how}": n for how, n in scored_by.items()}}
    notes = [
        "## This run", "",
        f"- {counts['accounts']} accounts, {counts['timeline_posts']} timeline posts: "
        f"{counts['timeline_posts_out_of_fold']} scored by their out-of-fold late fusion (labelled posts); "
        f"the others by the saved models (dealers.post_scores={cfg.dealers.post_scores}): "
        f"{scored_by['fusion']} by late fusion of picture and text, {scored_by['text_only']} by text alone"
        f"{' (no usable picture)' if cfg.dealers.post_scores == 'fusion' else ''}, {scored_by['image_only']} "
        f"by picture alone (no text). A post is drug-related at probability >= {cfg.threshold:g}.",
        f"- Dealers: expert 1 {counts['exp1_dealers']} of {counts['exp1_judged']} judged, expert 2 "
        f"{counts['exp2_dealers']} of {counts['exp2_judged']}.",
        f"- {cfg.dealers.num_folds}-fold stratified CV over accounts (seed {cfg.seed}); standardised features; "
        f"class_weight=balanced; L1 selection (C={cfg.dealers.l1_c:g}, |coef| > {cfg.dealers.min_coefficient:g}); "
        "precision, recall, F1 of the dealer class on the pooled out-of-fold predictions.",
        f"- Protocol: {dealers.protocol_note(dealer_config(cfg))}.",
        "- LR-select kept per fold: " + "; ".join(
            f"{e}: " + " | ".join(",".join(k) for k in folds) for e, folds in t2.kept_per_fold.items()) + ".",
    ]
    e_col, dealer = table.features[:, FEATURE_NAMES.index("E")], np.array([bool(v) for v in expert1])
    notes.append(f"- E (matches in {', '.join(cfg.dealers.evidence_sources)}): "
                 f"{100 * e_col[dealer].mean():.0f} % of expert 1's dealers, "
                 f"{100 * e_col[~dealer].mean():.0f} % of the other accounts.")
    if table.problems:
        notes.append("- Data problems: " + "; ".join(f"{n} x {p}" for p, n in sorted(table.problems.items())) + ".")
    files = dealers.write_table2(t2, workdir, notes)
    files.update(write_figures(workdir, accounts, table, expert1))
    (workdir / "models").mkdir(exist_ok=True)
    files["dealer_model"] = save_dealer_model(workdir / "models", cfg, table.features, expert1)
    return {"table2": t2, "files": files, "problems": dict(table.problems), "counts": counts, "skipped": None}


def _without_table2(cfg: EvaluateConfig, workdir: Path, accounts: list[dict], table: AccountTable,
                    expert1: list, reason: str) -> dict[str, Any]:
    path = workdir / "table2.md"
    atomic.write_text(path, f"# Table 2: dealer detection with two experts\n\n{reason}\n")
    files = {"table2_md": path, **write_figures(workdir, accounts, table, expert1)}
    return {"table2": None, "files": files, "problems": dict(table.problems),
            "counts": {"accounts": len(accounts)}, "skipped": reason}


def write_figures(workdir: Path, accounts: Sequence[Mapping[str, Any]], table: AccountTable,
                  expert1: Sequence[int | None]) -> dict[str, Path]:
    """``account_features.csv`` and Figures 5a-d (dealers: expert 1's; unjudged count as not)."""
    files = {"account_features": write_account_features(workdir / "account_features.csv", accounts, table)}
    is_dealer = np.array([bool(v) for v in expert1])
    col = {name: table.features[:, i] for i, name in enumerate(FEATURE_NAMES)}
    files["fig5a"] = plots.drug_share_histogram(workdir / "fig5a_drug_share.png", col["P"], is_dealer, "expert 1")
    files["fig5b"] = plots.drug_posts_by_hour(workdir / "fig5b_hours.png", table.drug_hours, is_dealer, "expert 1")
    files["fig5c"] = plots.following_ratio(workdir / "fig5c_following_ratio.png",
                                           [a.get("following") or 0 for a in accounts],
                                           [a.get("followers") or 0 for a in accounts], is_dealer, "expert 1")
    files["fig5d"] = plots.evidence_share(workdir / "fig5d_evidence.png", col["E"], is_dealer, "expert 1")
    return files
