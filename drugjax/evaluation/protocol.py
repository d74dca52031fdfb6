"""The paper's post-recognition protocol (Section 2.3) and its Table 1.

``python evaluate.py`` comes here (:func:`run`). Read top to bottom:

1. the labelled posts (id, account, tags, caption, label) and the backbone's features of
   those with an image, and of the web images (cached, shared with train.py);
2. one fold per post (:func:`assign_folds`: stratified by post, the paper's, or by
   account), seeded;
3. the image rows: the single-task MLP (drug head, posts only) and the multitask MLP
   (four heads, posts + web images), one training per fold, each trained on its fold's
   training posts, all folds of a method in one compiled program (the sweep engine);
4. the text rows: tf-idf + naive Bayes on tags, captions, both;
5. late fusion of MT MLP and Combined at the configured weight, the metrics at every
   weight of the grid, and the weight inner cross-validation on each fold's training
   posts would pick (image and text models refitted without the fold);
6. the files: Table 1, predictions per post, curves, the fusion-weight table, and the
   models fitted on all labelled posts for the later stages (:func:`load_models`).

No model that scores a post has seen it: every probability in ``predictions.csv`` comes
from the model of the post's fold, and the weight picked for a fold comes from models
that never saw that fold.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.data import folds as folds_lib
from drugjax.evaluation import leakage
from drugjax.evaluation.config import EvaluateConfig, check, is_run_directory, train_config
from drugjax.metrics import METRICS, Summary, metrics_by_fold, summarize
from drugjax.evaluation.tables import TABLE1_METHODS, Table1, write_table1
from drugjax.fusion import fuse, select_weight, weight_curve
from drugjax.tasks import INSTAGRAM_POSITIVE
from drugjax.text import TextClassifier
from drugjax.models import standin
from drugjax.runtime import atomic
from drugjax.training.build import resolve_weights
from drugjax.training.config import ConfigError
from drugjax.training.provenance import BackboneCheckpoint
from drugjax.training.sweep import FeatureTable, HeadConfig, Schedule, train_sweep

log = logging.getLogger(__name__)

IMAGE_METHODS = {"MLP": "mlp", "MT MLP": "mt_mlp"}  # Table 1 row -> column / file name
TEXT_METHODS = {"Tags only": "tags", "Caption only": "caption", "Combined": "combined"}
FUSED_IMAGE, FUSED_TEXT = "MT MLP", "Combined"  # what late fusion combines
_READ_CHUNK = 256


# --------------------------------------------------------------------------- 1. posts
@dataclasses.dataclass
class Posts:
    """The labelled posts of the posts source, in record order."""

    index: np.ndarray  # (n,) record index in the posts source
    ids: list[str]
    accounts: list[str]
    texts: list[dict]  # {"tags": [...], "caption": "..."}
    labels: np.ndarray  # (n,) 0/1, drug-related
    has_text: np.ndarray  # (n,) a tag or a non-blank caption

    def __len__(self) -> int:
        return len(self.ids)


def load_posts(source: Any) -> Posts:
    """The labelled posts of ``source`` (a built posts dataset or a list of records with
    ``id``, ``account``, ``tags``, ``caption``, ``kind``); unlabelled ones are left out."""
    index, ids, accounts, texts, labels = [], [], [], [], []
    getitems = getattr(source, "__getitems__", None)
    for start in range(0, len(source), _READ_CHUNK):
        chunk = list(range(start, min(len(source), start + _READ_CHUNK)))
        records = getitems(chunk) if getitems is not None else [source[i] for i in chunk]
        for i, record in zip(chunk, records):
            if int(record["kind"]) < 0:
                continue  # not labelled yet
            index.append(i)
            ids.append(str(record["id"]))
            accounts.append(str(record.get("account") or ""))
            texts.append({"tags": list(record.get("tags") or []), "caption": record.get("caption") or ""})
            labels.append(int(int(record["kind"]) == INSTAGRAM_POSITIVE))
    has_text = np.array([bool(t["tags"]) or bool(str(t["caption"]).strip()) for t in texts], bool)
    return Posts(np.asarray(index, np.int64), ids, accounts, texts, np.asarray(labels, np.int64), has_text)


# --------------------------------------------------------------------------- 2. folds
def assign_folds(posts: Posts, split: str, num_folds: int, seed: int) -> np.ndarray:
    """The fold in which each post is tested: ``split=post`` stratified k-fold over posts
    (the paper's), ``split=account`` stratified group k-fold keeping each account's posts
    in one fold. The one place the split is decided."""
    try:
        return folds_lib.folds_for_split(split, posts.labels, posts.accounts, num_folds, seed)
    except ValueError as e:
        raise ConfigError(f"split={split}, data.num_folds={num_folds}: {e}") from None


# --------------------------------------------------------------------------- 3. image
@dataclasses.dataclass
class CrossValidationTable(FeatureTable):
    """A feature table whose trainings are named by a code: training ``code`` leaves out
    the posts of the folds ``held_out[code]`` (web rows, fold -1, always train). Codes
    ``0 .. k-1`` are the outer folds, then one per pair of folds (the inner
    cross-validation of late fusion's weight), then the model of all posts."""

    held_out: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def training_rows(self, fold: int) -> np.ndarray:
        return np.flatnonzero(~np.isin(self.folds, np.asarray(self.held_out[fold], np.int64)))

    def validation_rows(self, fold: int) -> np.ndarray:
        rows = np.flatnonzero(np.isin(self.folds, np.asarray(self.held_out[fold], np.int64)))
        return rows if rows.size else np.flatnonzero(self.folds >= 0)  # the all-posts model: its own posts


def held_out_codes(num_folds: int, pairs: bool) -> dict[int, tuple[int, ...]]:
    """Code -> held-out folds: each outer fold, each pair of folds (with ``pairs``; the
    model without folds a and b scores a for outer fold b and b for outer fold a), and
    last the model trained on every post (nothing held out)."""
    codes = {f: (f,) for f in range(num_folds)}
    if pairs:
        for a in range(num_folds):
            for b in range(a + 1, num_folds):
                codes[len(codes)] = (a, b)
    codes[len(codes)] = ()
    return codes


def pair_code(codes: Mapping[int, tuple[int, ...]], a: int, b: int) -> int:
    wanted = (min(a, b), max(a, b))
    return next(code for code, held in codes.items() if held == wanted)


@dataclasses.dataclass
class ImageScores:
    """One image method's out-of-fold probabilities (NaN: no usable image) and the
    inner ones of each outer fold (``inner[o]``: every post outside fold ``o`` scored by
    a model that saw neither it nor fold ``o``; empty without pairs), and the parameters
    of the model of all posts."""

    out_of_fold: np.ndarray
    inner: dict[int, np.ndarray]
    params: Any
    seconds: float


def feature_backbone(cfg: EvaluateConfig, checkpoint: BackboneCheckpoint | None = None
                     ) -> tuple[Any, Any, Callable[[], dict], str | None]:
    """``(train config, backbone, variables(), weights id)`` of the frozen feature
    extractor: ``model.backbone``'s weights (id None: the weights file's digest), or with
    ``checkpoint`` (a train.py run as ``model.backbone.weights``) its backbone's parameters
    and batch statistics as the run built it (``transform_input``), keyed by its state
    digest."""
    import jax
    import jax.numpy as jnp

    from drugjax.training import build

    tcfg = train_config(cfg)
    if checkpoint is None:
        weights = build.load_backbone_weights(tcfg)
        backbone = build.make_backbone(tcfg, jnp.float32, training=False)
        init_key, _ = jax.random.split(jax.random.PRNGKey(tcfg.seed))  # a random backbone: as train.py's
        return tcfg, backbone, lambda: build.backbone_variables(backbone, weights, init_key, tcfg.data.image_size), None
    backbone_cfg = dataclasses.replace(tcfg.model.backbone, weights="none", transform_input=checkpoint.transform_input)
    tcfg = dataclasses.replace(tcfg, model=dataclasses.replace(tcfg.model, backbone=backbone_cfg))
    backbone = build.make_backbone(tcfg, jnp.float32, training=False)
    return tcfg, backbone, checkpoint.variables, checkpoint.weights_id


def image_features(cfg: EvaluateConfig, sources: Mapping[str, Any],
                   checkpoint: BackboneCheckpoint | None = None) -> dict:
    """The backbone's features of the usable posts and ``data.sources`` (cached; the
    same cache as train.py's ``model.kind=heads``), from :func:`feature_backbone`."""
    from drugjax.training import inputs

    tcfg, backbone, variables, weights_id = feature_backbone(cfg, checkpoint)
    inputs.check_sources(tcfg, sources)
    return inputs.cached_features(tcfg, sources, backbone, is_main=True, backbone_variables=variables,
                                  weights_id=weights_id)


def train_image_method(cfg: EvaluateConfig, features: Mapping[str, dict], posts: Posts, folds: np.ndarray,
                       method: str, *, pairs: bool) -> ImageScores:
    """Train ``method`` (MLP: drug head on posts; MT MLP: ``model.tasks`` on posts and the
    other ``data.sources``) once per code of :func:`held_out_codes`, in one sweep."""
    t0 = time.perf_counter()
    position = {int(i): p for p, i in enumerate(posts.index)}
    post_rows = np.asarray([position[int(i)] for i in features["posts"]["index"]], np.int64)
    others = [] if method == "MLP" else [s for s in cfg.data.sources if s != "posts"]
    parts = [features["posts"]] + [features[s] for s in others]
    codes = held_out_codes(cfg.data.num_folds, pairs)
    table = CrossValidationTable(
        np.concatenate([p["features"] for p in parts]).astype(np.float32),
        np.concatenate([p["kind"] for p in parts]).astype(np.int32),
        np.concatenate([folds[post_rows]] + [np.full(len(p["kind"]), -1) for p in parts[1:]]).astype(np.int32),
        held_out=codes)
    tasks = ("drug",) if method == "MLP" else tuple(cfg.model.tasks)
    configs = [HeadConfig(relation_weight=cfg.model.relation_weight, learning_rate=cfg.optim.learning_rate,
                          decay=cfg.optim.decay, weight_decay=cfg.optim.weight_decay, seed=cfg.seed, fold=code,
                          dropout=cfg.model.dropout, hidden=tuple(cfg.model.hidden), tasks=tasks,
                          input_norm=cfg.model.input_norm) for code in codes]
    schedule = Schedule(steps=cfg.image.steps, batch_size=cfg.data.batch_size, optim=cfg.optim,
                        chunk_steps=cfg.image.chunk_steps)
    try:
        results = train_sweep(table, configs, schedule, engine=cfg.image.engine, keep_params=True,
                              keep_predictions=True)
    except ValueError as e:  # too few training rows for a batch
        raise ConfigError(f"{method}: {e}; lower data.batch_size") from None
    for code, result in zip(codes, results):
        if result["diverged"]:
            raise ConfigError(f"{method}: the training without fold(s) {list(codes[code]) or 'none'} diverged "
                              f"(non-finite loss); lower optim.learning_rate")
    probability = {code: result["drug_probability"] for code, result in zip(codes, results)}
    out_of_fold = np.full(len(posts), np.nan)  # NaN: no usable image
    for row, post in enumerate(post_rows):  # the posts come first in the table
        out_of_fold[post] = probability[folds[post]][row]
    inner: dict[int, np.ndarray] = {}
    if pairs:
        for outer in range(cfg.data.num_folds):
            inner[outer] = np.full(len(posts), np.nan)
            for row, post in enumerate(post_rows):
                if folds[post] != outer:
                    inner[outer][post] = probability[pair_code(codes, outer, folds[post])][row]
    everything = next(code for code, held in codes.items() if not held)
    return ImageScores(out_of_fold, inner, results[list(codes).index(everything)]["params"], time.perf_counter() - t0)


# --------------------------------------------------------------------------- 4. text
@dataclasses.dataclass
class TextScores:
    out_of_fold: np.ndarray
    inner: dict[int, np.ndarray]
    model: TextClassifier  # fitted on every labelled post


def text_method(cfg: EvaluateConfig, posts: Posts, folds: np.ndarray, mode: str, *, pairs: bool) -> TextScores:
    """Out-of-fold probabilities of the text classifier on ``mode`` (tags, caption,
    combined), the inner ones of each outer fold (with ``pairs``), and the model of all
    posts."""
    def classifier() -> TextClassifier:
        return TextClassifier(mode=mode, max_features=cfg.text.max_features, alpha=cfg.text.alpha)

    try:
        out_of_fold = folds_lib.out_of_fold_probability(classifier(), posts.texts, posts.labels, folds)
        inner: dict[int, np.ndarray] = {}
        if pairs:
            k = cfg.data.num_folds
            inner = {outer: np.full(len(posts), np.nan) for outer in range(k)}
            for a in range(k):
                for b in range(a + 1, k):
                    train = np.flatnonzero(~np.isin(folds, (a, b)))
                    model = classifier().fit([posts.texts[i] for i in train], posts.labels[train])
                    for outer, scored in ((a, b), (b, a)):
                        rows = np.flatnonzero(folds == scored)
                        inner[outer][rows] = _positive(model, [posts.texts[i] for i in rows])
        model = classifier().fit(posts.texts, posts.labels)
    except ValueError as e:  # e.g. no post has any tags
        raise ConfigError(f"text classifier ({mode}): {e}") from None
    return TextScores(out_of_fold, inner, model)


def _positive(model: TextClassifier, texts: list[dict]) -> np.ndarray:
    return model.predict_proba(texts)[:, list(model.classes_).index(1)]


# --------------------------------------------------------------------------- 5. fusion
@dataclasses.dataclass
class FusionResult:
    probability: np.ndarray
    scored_by_text_only: int
    scored_by_image_only: int
    curve: list  # fusion.WeightPoint per weight of the grid
    selected: list[float | None]  # the weight inner CV picks per outer fold (None: no inner CV)
    selected_summary: Summary | None  # metrics with each fold's selected weight


def fusion_inputs(image: np.ndarray, text: np.ndarray, posts: Posts) -> tuple[np.ndarray, np.ndarray]:
    """Image and text probabilities for fusion: NaN text where a post has no text (it is
    then scored by its image alone), unless it has no image either (then its text
    classifier's score, the prior, stands)."""
    text = np.where(~posts.has_text & ~np.isnan(image), np.nan, text)
    return image, text


def late_fusion(cfg: EvaluateConfig, posts: Posts, folds: np.ndarray, image: ImageScores,
                text: TextScores) -> FusionResult:
    image_p, text_p = fusion_inputs(image.out_of_fold, text.out_of_fold, posts)
    fused = fuse(image_p, text_p, cfg.fusion.weight)
    curve = weight_curve(posts.labels, image_p, text_p, folds, cfg.fusion.weights, cfg.threshold)
    selected: list[float | None] = [None] * cfg.data.num_folds
    selected_summary = None
    if image.inner and text.inner:
        per_fold = []
        for outer in range(cfg.data.num_folds):
            train = folds != outer
            inner_image, inner_text = fusion_inputs(image.inner[outer], text.inner[outer], posts)
            weight = select_weight(posts.labels[train], inner_image[train], inner_text[train], folds[train],
                                   cfg.fusion.select_metric, cfg.fusion.weights, cfg.threshold)
            selected[outer] = weight
            test = folds == outer
            per_fold += metrics_by_fold(posts.labels[test], fuse(image_p[test], text_p[test], weight).probability,
                                        folds[test], cfg.threshold)
        selected_summary = summarize(per_fold)
    return FusionResult(fused.probability, fused.scored_by_text_only, fused.scored_by_image_only, curve, selected,
                        selected_summary)


# --------------------------------------------------------------------------- 6. tables
def summary_of(labels: np.ndarray, probability: np.ndarray, folds: np.ndarray, threshold: float,
               notes: Sequence[str] = ()) -> Summary:
    """Mean ± std over folds of the posts that have a probability (NaN: not scored)."""
    scored = ~np.isnan(probability)
    summary = summarize(metrics_by_fold(labels[scored], probability[scored], folds[scored], threshold))
    return dataclasses.replace(summary, notes=summary.notes + tuple(notes))


def table1(cfg: EvaluateConfig, posts: Posts, folds: np.ndarray, scores: Mapping[str, np.ndarray],
           fusion: FusionResult) -> Table1:
    without_image = int(np.isnan(scores["MLP"]).sum())
    rows = {}
    for method in IMAGE_METHODS:
        notes = [f"{without_image} post(s) without a usable image are not scored by the image model"] if without_image else []
        rows[method] = summary_of(posts.labels, scores[method], folds, cfg.threshold, notes)
    without_text = int((~posts.has_text).sum())
    for method in TEXT_METHODS:
        notes = [f"{without_text} post(s) without tags or caption get the classifier's prior"] if without_text else []
        rows[method] = summary_of(posts.labels, scores[method], folds, cfg.threshold, notes)
    notes = [f"weight {cfg.fusion.weight:g} on {FUSED_IMAGE}, {1 - cfg.fusion.weight:g} on {FUSED_TEXT}; "
             f"{fusion.scored_by_text_only} post(s) scored by text alone (no usable image), "
             f"{fusion.scored_by_image_only} by image alone (no text)"]
    rows["Late fusion"] = summary_of(posts.labels, scores["Late fusion"], folds, cfg.threshold, notes)
    return Table1(rows)


# --------------------------------------------------------------------------- the run
def run(cfg: EvaluateConfig, workdir: str | Path, *, sources: Mapping[str, Any] | None = None,
        on_start: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """The whole protocol; writes its files into ``workdir`` and returns a summary
    (``table1`` as a :class:`Table1`, ``files``, ``counts``, ``seconds``)."""
    from drugjax.training import inputs

    check(cfg)
    t0 = time.perf_counter()
    sources = inputs.load_sources(train_config(cfg)) if sources is None else sources
    if "posts" not in sources:
        raise ConfigError("the data has no posts source (posts.jsonl); Table 1 needs labelled posts")
    data_root = getattr(sources["posts"], "root", None)  # None: sources passed in memory
    if data_root is not None:
        log.info("data ROOT %s", data_root)
    posts = load_posts(sources["posts"])
    if not len(posts):
        raise ConfigError("none of the posts has a drug label (0 or 1) yet; label them first "
                          "(python -m drugjax.data export-unlabelled / label, docs/data-format.md)")
    folds = assign_folds(posts, cfg.split, cfg.data.num_folds, cfg.seed)
    log.info("Table 1: %d labelled posts, %d folds by %s x %d methods (%s); image features first",
             len(posts), cfg.data.num_folds, cfg.split, len(TABLE1_METHODS), ", ".join(TABLE1_METHODS))
    # A train.py checkpoint as the backbone: refused before any feature is extracted when
    # it trained on a post of any fold scored here (drugjax.evaluation.leakage).
    checkpoint = leakage.check_backbone(cfg, sources["posts"], posts.ids, folds)
    features = image_features(cfg, sources, checkpoint)
    if not len(features["posts"]["kind"]):
        raise ConfigError(f"none of the {len(posts)} labelled posts has a usable image; the MLP, MT MLP and "
                          "late fusion rows need images (docs/data-format.md)")
    seconds = {"data_and_features": time.perf_counter() - t0}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if on_start is not None:
        on_start(workdir)

    pairs = cfg.data.num_folds >= 3  # inner CV needs two training folds to split
    image = {m: train_image_method(cfg, features, posts, folds, m, pairs=pairs and m == FUSED_IMAGE)
             for m in IMAGE_METHODS}
    seconds.update({f"image_{IMAGE_METHODS[m]}": s.seconds for m, s in image.items()})
    t1 = time.perf_counter()
    text = {m: text_method(cfg, posts, folds, mode, pairs=pairs and m == FUSED_TEXT)
            for m, mode in TEXT_METHODS.items()}
    seconds["text"] = time.perf_counter() - t1
    fusion = late_fusion(cfg, posts, folds, image[FUSED_IMAGE], text[FUSED_TEXT])
    scores = {**{m: s.out_of_fold for m, s in image.items()}, **{m: s.out_of_fold for m, s in text.items()},
              "Late fusion": fusion.probability}
    table = table1(cfg, posts, folds, scores, fusion)

    counts = {
        "posts": len(posts), "positives": int(posts.labels.sum()), "unlabelled": len(sources["posts"]) - len(posts),
        "without_image": int(np.isnan(scores["MLP"]).sum()), "without_text": int((~posts.has_text).sum()),
        "scored_by_text_only": fusion.scored_by_text_only, "scored_by_image_only": fusion.scored_by_image_only,
        "web_images": int(sum(len(features[s]["kind"]) for s in cfg.data.sources if s != "posts")),
        "posts_per_fold": np.bincount(folds, minlength=cfg.data.num_folds).tolist(),
        "positives_per_fold": np.bincount(folds, weights=posts.labels, minlength=cfg.data.num_folds).astype(int).tolist(),
    }
    files = write_table1(table, workdir, notes=_run_notes(cfg, counts, fusion, data_root))
    files["predictions"] = write_predictions(workdir / "predictions.csv", posts, folds, scores)
    files.update(write_fusion_weights(workdir, cfg, fusion))
    from drugjax.evaluation import plots

    files["roc"] = plots.roc_curves(workdir / "roc.png", posts.labels, scores)
    files["precision_recall"] = plots.precision_recall_curves(workdir / "precision_recall.png", posts.labels, scores)
    files["fusion_weights_png"] = plots.fusion_weight_curve(workdir / "fusion_weights.png", fusion.curve,
                                                            cfg.fusion.weight)
    files["models"] = save_models(workdir / "models", cfg, image, text, fusion, features, checkpoint)
    seconds["total"] = time.perf_counter() - t0
    summary = {"data_root": None if data_root is None else str(data_root), "counts": counts, "seconds": {k: round(v, 1) for k, v in seconds.items()},
               "fusion": {"weight": cfg.fusion.weight, "selected_by_inner_cv": fusion.selected},
               "split": cfg.split, "num_folds": cfg.data.num_folds, "seed": cfg.seed,
               "files": {k: str(v) for k, v in files.items()}}
    files["run"] = workdir / "run.json"
    atomic.write_text(files["run"], json.dumps(summary, indent=1) + "\n")
    return {"table1": table, "files": files, "counts": counts, "seconds": seconds, "fusion": fusion,
            "checkpoint": checkpoint}


def _run_notes(cfg: EvaluateConfig, counts: dict, fusion: FusionResult, data_root: Path | None) -> str:
    """The "This run" section below Table 1 in table1.md."""
    data = f"ROOT {cfg.data.root}" if cfg.data.root else f"synthetic world, preset {cfg.data.preset}, seed {cfg.data.seed}"
    if data_root is not None and not cfg.data.root:
        data += f" (ROOT {data_root})"
    backbone = cfg.model.backbone
    weights = (f"train.py run {backbone.weights}" if is_run_directory(backbone.weights)
               else resolve_weights(train_config(cfg)).describe())
    lines = [
        "", "## This run", "",
        f"- Data: {data}; {counts['posts']} labelled posts ({counts['positives']} drug-related; "
        f"{counts['unlabelled']} unlabelled left out), "
        f"{counts['web_images']} web images for MT MLP.",
        f"- Folds: {cfg.data.num_folds}, split by {cfg.split}, seed {cfg.seed}; posts per fold "
        f"{counts['posts_per_fold']}, drug-related {counts['positives_per_fold']}; threshold {cfg.threshold:g}.",
        f"- Image: frozen {backbone.name} features ({weights}"
        f", {cfg.data.image_size} px), trunk {list(cfg.model.hidden)}, {cfg.image.steps} steps of batch "
        f"{cfg.data.batch_size}, {cfg.optim.name} lr {cfg.optim.learning_rate:g}, MT MLP relation weight "
        f"{cfg.model.relation_weight:g}.",
        f"- Text: tf-idf (top {cfg.text.max_features} terms per field) + multinomial naive Bayes (alpha {cfg.text.alpha:g}).",
        f"- Late fusion: {cfg.fusion.weight:g} x {FUSED_IMAGE} + {1 - cfg.fusion.weight:g} x {FUSED_TEXT}; "
        f"{counts['scored_by_text_only']} post(s) scored by text alone, {counts['scored_by_image_only']} by image "
        f"alone. Inner cross-validation would pick "
        + (", ".join(f"{w:g}" for w in fusion.selected) if fusion.selected[0] is not None else "nothing (too few folds)")
        + " (fold by fold; see fusion_weights.md).",
    ]
    return "\n".join(lines) + "\n"


def write_predictions(path: Path, posts: Posts, folds: np.ndarray, scores: Mapping[str, np.ndarray]) -> Path:
    """One row per labelled post: id, account, fold, label, has_image, has_text and each
    method's out-of-fold probability (empty: not scored)."""
    columns = {**IMAGE_METHODS, **TEXT_METHODS, "Late fusion": "late_fusion"}
    with atomic.replacing(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "account", "fold", "label", "has_image", "has_text", *columns.values()])
        for i in range(len(posts)):
            writer.writerow([posts.ids[i], posts.accounts[i], int(folds[i]), int(posts.labels[i]),
                             int(not math.isnan(scores["MLP"][i])), int(posts.has_text[i]),
                             *("" if math.isnan(scores[m][i]) else f"{scores[m][i]:.6f}" for m in columns)])
    return path


def write_fusion_weights(workdir: Path, cfg: EvaluateConfig, fusion: FusionResult) -> dict[str, Path]:
    """``fusion_weights.csv`` / ``.md``: the metrics of late fusion at each weight of the
    grid (mean ± std over folds), and the weight inner CV picks fold by fold."""
    csv_path, md_path = workdir / "fusion_weights.csv", workdir / "fusion_weights.md"
    with atomic.replacing(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["weight", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))])
        for point in fusion.curve:
            writer.writerow([point.weight, *(_number(getattr(point.summary, s)[m]) for m in METRICS
                                             for s in ("mean", "std"))])
    lines = [
        "# Late fusion against its weight", "",
        f"p = w x {FUSED_IMAGE} + (1 - w) x {FUSED_TEXT} (w = 0: text only, 1: image only); out-of-fold "
        f"probabilities, mean ± std over {cfg.data.num_folds} folds, threshold {cfg.threshold:g}. Table 1 uses "
        f"w = {cfg.fusion.weight:g}.", "",
        "| w | Accuracy (%) | Precision (%) | Recall (%) | F1 | AUC |", "|---|---|---|---|---|---|",
    ]
    for point in fusion.curve:
        lines.append(f"| {point.weight:g} | " + " | ".join(_cell(point.summary, m) for m in METRICS) + " |")
    lines.append("")
    if fusion.selected_summary is not None:
        lines += [
            f"Inner cross-validation on each fold's training posts (models refitted without the fold, "
            f"{cfg.fusion.select_metric} maximised) picks w = "
            + ", ".join(f"{w:g}" for w in fusion.selected) + f" for folds 0-{cfg.data.num_folds - 1}; each fold "
            "scored at its own pick:", "",
            "| | Accuracy (%) | Precision (%) | Recall (%) | F1 | AUC |", "|---|---|---|---|---|---|",
            "| picked by inner CV | " + " | ".join(_cell(fusion.selected_summary, m) for m in METRICS) + " |", ""]
    else:
        lines += ["No inner cross-validation: it needs at least 3 folds.", ""]
    atomic.write_text(md_path, "\n".join(lines))
    return {"fusion_weights_csv": csv_path, "fusion_weights_md": md_path}


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _cell(summary: Summary, metric: str) -> str:
    mean, std = summary.mean[metric], summary.std[metric]
    if math.isnan(mean):
        return "n/a"
    scale, digits = (100, 1) if metric in ("accuracy", "precision", "recall") else (1, 3)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


# --------------------------------------------------------------------------- models
def save_models(folder: Path, cfg: EvaluateConfig, image: Mapping[str, ImageScores], text: Mapping[str, TextScores],
                fusion: FusionResult, features: Mapping[str, dict], checkpoint: BackboneCheckpoint | None = None) -> Path:
    """The models fitted on every labelled post, for the later stages: ``mlp.npz`` and
    ``mt_mlp.npz`` (head parameters, keys like ``trunk_0/kernel``), ``text_<mode>.joblib``
    (fitted :class:`~drugjax.text.TextClassifier`), ``fusion.json`` (weight, threshold,
    what the heads expect: tasks, trunk, backbone and image size)."""
    import joblib

    from drugjax.runtime.trees import flatten

    folder.mkdir(parents=True, exist_ok=True)
    for method, scores in image.items():
        arrays = {"/".join(key): np.asarray(value) for key, value in flatten(scores.params).items()}
        with atomic.replacing(folder / f"{IMAGE_METHODS[method]}.npz") as f:
            np.savez(f, **arrays)
    for method, scores in text.items():
        with atomic.replacing(folder / f"text_{TEXT_METHODS[method]}.joblib") as f:
            joblib.dump(scores.model, f)
    backbone = cfg.model.backbone
    if checkpoint is not None:  # a train.py run: its step and state digest identify the weights
        weights_name, weights_digest, transform = backbone.weights, checkpoint.state_sha256, checkpoint.transform_input
    else:
        weights = resolve_weights(train_config(cfg))
        weights_name = standin.NAME if weights.choice == "synthetic" else str(weights.path or "none")
        weights_digest, transform = weights.sha256, weights.transform_input
    document = {
        "weight": cfg.fusion.weight, "threshold": cfg.threshold,
        "image": {"method": FUSED_IMAGE, "file": "mt_mlp.npz"}, "text": {"method": FUSED_TEXT, "file": "text_combined.joblib"},
        "selected_by_inner_cv": fusion.selected,
        "heads": {"mlp": {"tasks": ["drug"]}, "mt_mlp": {"tasks": list(cfg.model.tasks)},
                  "hidden": list(cfg.model.hidden), "dropout": cfg.model.dropout, "input_norm": cfg.model.input_norm,
                  "features_dim": int(features["posts"]["features"].shape[1])},
        "backbone": {"name": backbone.name, "weights": weights_name,
                     "weights_sha256": weights_digest,
                     "checkpoint": None if checkpoint is None else str(checkpoint.step),
                     "transform_input": transform,
                     "pool_layers": list(backbone.pool_layers), "flip_average": backbone.flip_average,
                     "image_size": cfg.data.image_size,
                     "seed": cfg.seed},
    }
    atomic.write_text(folder / "fusion.json", json.dumps(document, indent=1) + "\n")
    return folder


@dataclasses.dataclass
class PostModels:
    """What :func:`save_models` wrote, loaded: score posts from features and text."""

    heads: dict[str, Any]  # "mlp" / "mt_mlp" -> (MultitaskHeads, params)
    text: dict[str, TextClassifier]  # "tags" / "caption" / "combined"
    fusion: dict

    def image_probability(self, features: np.ndarray, method: str = "mt_mlp") -> np.ndarray:
        """Drug-head probability of backbone features (n, D)."""
        import jax

        model, params = self.heads[method]
        logits = model.apply({"params": params}, np.asarray(features, np.float32))
        return np.asarray(jax.nn.sigmoid(logits))[:, list(model.tasks).index("drug")]

    def text_probability(self, posts: Sequence[Mapping[str, Any]], mode: str = "combined") -> np.ndarray:
        return _positive(self.text[mode], list(posts))

    def probability(self, features: np.ndarray, posts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Late fusion at the saved weight (features of NaN rows: no image)."""
        image = np.full(len(posts), np.nan)
        usable = ~np.isnan(np.asarray(features, np.float64)).any(axis=1)
        if usable.any():
            image[usable] = self.image_probability(np.asarray(features)[usable])
        return fuse(image, self.text_probability(posts), self.fusion["weight"]).probability


def load_models(folder: str | Path) -> PostModels:
    """Load the models :func:`save_models` wrote into ``folder``."""
    import joblib

    from drugjax.models.heads import MultitaskHeads

    folder = Path(folder)
    fusion = json.loads((folder / "fusion.json").read_text())
    heads = {}
    for name in IMAGE_METHODS.values():
        params: dict = {}
        with np.load(folder / f"{name}.npz") as z:
            for key in z.files:
                node = params
                *path, leaf = key.split("/")
                for part in path:
                    node = node.setdefault(part, {})
                node[leaf] = z[key]
        model = MultitaskHeads(hidden=tuple(fusion["heads"]["hidden"]), dropout_rate=fusion["heads"]["dropout"],
                               tasks=tuple(fusion["heads"][name]["tasks"]),
                               input_norm=bool(fusion["heads"].get("input_norm", False)))
        heads[name] = (model, params)
    text = {mode: joblib.load(folder / f"text_{mode}.joblib") for mode in TEXT_METHODS.values()}
    return PostModels(heads, text, fusion)
