"""Structured config of evaluate.py (the paper's post-recognition protocol, Table 1).

Registered in Hydra's ConfigStore as ``evaluate_schema``, which ``conf/evaluate.yaml``
extends: a misspelt key or a value of the wrong type fails at start-up. The data, model
and optimiser parts are train.py's (:mod:`drugjax.training.config`), so the ``data``,
``model`` and ``optim`` groups of ``conf/`` serve both entry points.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from drugjax.data.folds import SPLITS
from drugjax.training.config import (
    ConfigError, DataConfig, ModelConfig, OptimConfig, TrainConfig, as_dict, check_config)

FUSION_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


@dataclass
class ImageConfig:
    """The MLP and MT MLP heads on frozen backbone features, trained by the sweep engine
    (every fold in one compiled program). Trunk widths, dropout, the task set of MT MLP
    and the relation weight come from ``model``, the optimiser from ``optim``, the batch
    size from ``data.batch_size``."""

    steps: int = 600
    engine: str = "vmap"  # vmap | loop (drugjax.training.sweep)
    chunk_steps: int = 200


@dataclass
class TextConfig:
    """The tf-idf + naive Bayes text classifier (drugjax.text.TextClassifier)."""

    max_features: int = 1000  # terms kept per field (the paper's 1000)
    alpha: float = 1.0  # naive Bayes smoothing


@dataclass
class FusionConfig:
    """Late fusion p = weight * p_image + (1 - weight) * p_text (image: MT MLP, text:
    Combined)."""

    weight: float = 0.5  # the paper's
    # The metric inner cross-validation on each fold's training posts maximises when it
    # picks a weight (reported beside the fixed weight, never used for Table 1).
    select_metric: str = "f1"
    weights: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])


@dataclass
class DealersConfig:
    """Account features and dealer detection (Table 2, drugjax.evaluation.dealers)."""

    num_folds: int = 5  # stratified folds over the accounts
    l1_c: float = 0.1  # inverse strength of LR-select's L1 selection (standardised features)
    min_coefficient: float = 0.01  # |L1 coefficient| at or below this drops a feature
    c: float = 1.0  # inverse L2 strength of the final logistic regression
    blacklist: Optional[str] = None  # transaction-evidence terms; None = conf/blacklist.yaml
    log_counts: bool = True  # log1p of R1-R3 (drugjax.accounts)
    # where a blacklist match sets E: the paper's bio and comments of drug-related posts;
    # add caption to count captions too (their matches are listed as evidence either way)
    evidence_sources: list[str] = field(default_factory=lambda: ["bio", "comment"])
    # Two readings of the paper's protocol (docs/accounts.md): nested (LR-select's L1
    # selection inside each training fold, the default: no account scored was seen by the
    # selection) or holdout (the paper's: selected once on a stratified hold-out share of
    # the accounts, which are then left out of the scores)
    selection: str = "nested"
    holdout_fraction: float = 0.3
    # own: each expert's rows train and score on that expert's labels (the default);
    # other: train on one expert's labels, score against the other expert's
    ground_truth: str = "own"
    # How a timeline post that is not a labelled post gets its drug probability: text (the
    # saved Combined text model, the default) or fusion (the paper's classifier: Table 1's
    # MT MLP on its picture's backbone features, late-fused with the text model). Fusion
    # is the better post classifier on the synthetic world's timelines, yet its P
    # separates the dealers less well there (docs/accounts.md), hence text by default.
    post_scores: str = "text"


@dataclass
class EvaluateConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    text: TextConfig = field(default_factory=TextConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    dealers: DealersConfig = field(default_factory=DealersConfig)
    name: str = "table1"  # names the run directory runs/evaluate/<name>
    # The run directory; None = Hydra's output directory (see conf/evaluate.yaml).
    workdir: Optional[str] = None
    seed: int = 0  # folds, head initialisation and batches all follow from it
    # post: stratified k-fold over posts (the paper's); account: stratified group k-fold,
    # every account's posts in one fold. The number of folds is data.num_folds.
    split: str = "post"
    threshold: float = 0.5  # a post is called drug-related when its probability >= threshold
    # Progress of the long steps (world, dataset builds, features, each sweep): a bar on a
    # terminal, a log line every 10 s elsewhere.
    progress: bool = True


def register_configs() -> None:
    """Register :class:`EvaluateConfig` as ``evaluate_schema`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)


def to_config(cfg: Any) -> EvaluateConfig:
    """An :class:`EvaluateConfig` from a DictConfig or mapping, through the schema's checks."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(EvaluateConfig), OmegaConf.create(as_dict(cfg)))
    return OmegaConf.to_object(merged)


def check(cfg: EvaluateConfig) -> None:
    """Raise :class:`ConfigError` for a value that cannot work, naming the key and the fix."""
    if cfg.data.kind == "dir" and not cfg.data.root:
        raise ConfigError("data.root is required with data=dir: python evaluate.py data=dir data.root=PATH")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split must be one of {list(SPLITS)} (by post, the paper's, or by account), got {cfg.split!r}")
    if cfg.data.num_folds < 2:
        raise ConfigError(f"data.num_folds must be >= 2 for cross-validation, got {cfg.data.num_folds}")
    if not 0.0 <= cfg.threshold <= 1.0:
        raise ConfigError(f"threshold must lie in [0, 1], got {cfg.threshold}")
    weights = [cfg.fusion.weight, *cfg.fusion.weights]
    if not cfg.fusion.weights or not all(0.0 <= w <= 1.0 for w in weights):
        raise ConfigError(f"fusion.weight and fusion.weights must lie in [0, 1] (the image's share), got "
                          f"{cfg.fusion.weight} and {list(cfg.fusion.weights)}")
    if cfg.fusion.select_metric not in FUSION_METRICS:
        raise ConfigError(f"fusion.select_metric must be one of {list(FUSION_METRICS)}, got {cfg.fusion.select_metric!r}")
    if cfg.image.engine not in ("vmap", "loop"):
        raise ConfigError(f"image.engine must be vmap or loop, got {cfg.image.engine!r}")
    for key in ("steps", "chunk_steps"):
        if getattr(cfg.image, key) < 1:
            raise ConfigError(f"image.{key} must be >= 1, got {getattr(cfg.image, key)}")
    if cfg.text.max_features < 1 or cfg.text.alpha < 0:
        raise ConfigError(f"text.max_features must be >= 1 and text.alpha >= 0, got {cfg.text.max_features}, "
                          f"{cfg.text.alpha}")
    d = cfg.dealers
    if d.num_folds < 2 or d.l1_c <= 0 or d.c <= 0 or d.min_coefficient < 0:
        raise ConfigError(f"dealers.num_folds must be >= 2, dealers.l1_c and dealers.c > 0 and "
                          f"dealers.min_coefficient >= 0; got {d.num_folds}, {d.l1_c}, {d.c}, {d.min_coefficient}")
    if d.selection not in ("nested", "holdout") or d.ground_truth not in ("own", "other"):
        raise ConfigError(f"dealers.selection must be nested or holdout and dealers.ground_truth own or other; "
                          f"got {d.selection!r}, {d.ground_truth!r}")
    if d.post_scores not in ("fusion", "text"):
        raise ConfigError(f"dealers.post_scores must be fusion or text, got {d.post_scores!r}")
    if not 0.0 < d.holdout_fraction < 1.0:
        raise ConfigError(f"dealers.holdout_fraction must lie between 0 and 1 (the accounts held out for the "
                          f"selection), got {d.holdout_fraction}")
    if not d.evidence_sources or set(d.evidence_sources) - {"bio", "caption", "comment"}:
        raise ConfigError(f"dealers.evidence_sources must be a non-empty list of bio, caption, comment; "
                          f"got {list(d.evidence_sources)}")
    if d.blacklist and not Path(d.blacklist).expanduser().is_file():
        raise ConfigError(f"dealers.blacklist={d.blacklist}: no such file; copy and edit conf/blacklist.yaml")
    weights = cfg.model.backbone.weights
    if is_run_directory(weights):
        from drugjax.training.provenance import backbone_checkpoint

        backbone_checkpoint(weights)  # a train.py run of an end-to-end model (checked for leaks later)
    else:
        from drugjax.training.build import resolve_weights

        resolve_weights(train_config(cfg))  # a missing or damaged weights file, named with the fix
    check_config(train_config(cfg), 1)


def is_run_directory(weights: str | None) -> bool:
    """Whether ``model.backbone.weights`` names a train.py run (its directory, its
    checkpoints/ or one step), not a weights file, ``synthetic`` or ``none``."""
    return bool(weights) and weights not in ("none", "synthetic") and Path(weights).expanduser().is_dir()


def train_config(cfg: EvaluateConfig) -> TrainConfig:
    """The train config whose features and heads the image side uses: ``model.kind=heads``
    on the frozen backbone, with evaluate's data, model, optimiser and seed."""
    model = dataclasses.replace(cfg.model, kind="heads",
                                backbone=dataclasses.replace(cfg.model.backbone, trainable=False))
    data = dataclasses.replace(cfg.data, val_fold=0)  # evaluate's folds are its own (split)
    return TrainConfig(model=model, data=data, optim=cfg.optim, seed=cfg.seed, steps=cfg.image.steps,
                       progress=False, tensorboard=False, name=cfg.name)
