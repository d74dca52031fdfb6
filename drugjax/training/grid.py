"""A grid of head trainings from a train config (``sweep.enabled``), and its report.

``python train.py experiment=ablation_relation_weight`` comes here: the features are
taken from the cache (or extracted once), the grid of ``sweep.*`` lists is trained by
:func:`drugjax.training.sweep.train_sweep`, and the run directory gets

* ``ablation.csv``: one row per training (its swept values, fold, seed, metrics);
* ``ablation.md``: per setting of the swept hyperparameters, mean ± std over folds and
  seeds of F1 and AUC (and accuracy beside the all-negative baseline);
* ``ablation.png``: F1 and AUC against the relation weight, with the spread.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from drugjax.training import build, inputs
from drugjax.training.config import ConfigError, TrainConfig, check_config
from drugjax.training.sweep import ENGINES, FeatureTable, HeadConfig, Schedule, train_sweep

log = logging.getLogger(__name__)

# sweep.<list> -> HeadConfig field, and where its single value comes from when empty.
AXES = {
    "relation_weights": ("relation_weight", lambda cfg: cfg.model.relation_weight),
    "learning_rates": ("learning_rate", lambda cfg: cfg.optim.learning_rate),
    "decays": ("decay", lambda cfg: cfg.optim.decay),
    "weight_decays": ("weight_decay", lambda cfg: cfg.optim.weight_decay),
    "dropouts": ("dropout", lambda cfg: cfg.model.dropout),
    "seeds": ("seed", lambda cfg: cfg.seed),
    "folds": ("fold", lambda cfg: cfg.data.val_fold),
}
METRICS = ("accuracy", "all_negative_accuracy", "precision", "recall", "f1", "auc")


def grid(cfg: TrainConfig) -> tuple[list[HeadConfig], list[str]]:
    """The trainings the ``sweep`` lists describe, and the hyperparameters that vary
    (besides fold and seed)."""
    values = {}
    for key, (field, default) in AXES.items():
        listed = list(getattr(cfg.sweep, key))
        values[field] = listed or [default(cfg)]
    for fold in values["fold"]:
        if not 0 <= fold < cfg.data.num_folds:
            raise ConfigError(f"sweep.folds: fold {fold} is not in [0, data.num_folds={cfg.data.num_folds})")
    fields = list(values)
    common = {"hidden": tuple(cfg.model.hidden), "tasks": tuple(cfg.model.tasks), "input_norm": cfg.model.input_norm}
    configs = [HeadConfig(**dict(zip(fields, combo)), **common) for combo in itertools.product(*values.values())]
    varying = [f for f in fields if f not in ("fold", "seed") and len(values[f]) > 1]
    return configs, varying


def _check(cfg: TrainConfig) -> None:
    check_config(cfg, 1)
    if cfg.model.kind != "heads":
        raise ConfigError("sweep.enabled trains heads on precomputed features: set model.kind=heads")
    if cfg.sweep.engine not in ENGINES:
        raise ConfigError(f"sweep.engine must be one of {ENGINES}, got {cfg.sweep.engine!r}")
    if cfg.sweep.chunk_steps < 1:
        raise ConfigError(f"sweep.chunk_steps must be >= 1, got {cfg.sweep.chunk_steps}")


def backbone_features(cfg: TrainConfig, sources: dict) -> dict:
    """The backbone's features of the posts and ``data.sources`` (cached, as train.py's):
    ``{source: {"features", "kind", "fold", "index"}}``."""
    inputs.check_sources(cfg, sources)
    init_key, _ = jax.random.split(jax.random.PRNGKey(cfg.seed))
    backbone_weights = build.load_backbone_weights(cfg)
    backbone = build.make_backbone(cfg, jnp.float32, training=False)
    return inputs.cached_features(
        cfg, sources, backbone, is_main=True,
        backbone_variables=lambda: build.backbone_variables(backbone, backbone_weights, init_key, cfg.data.image_size))


def features_table(cfg: TrainConfig, sources: dict | None = None) -> FeatureTable:
    """:func:`backbone_features` as one table, posts in their folds (``data.val_fold``
    validates)."""
    sources = inputs.load_sources(cfg) if sources is None else sources
    return FeatureTable.from_cache(backbone_features(cfg, sources), list(cfg.data.sources))


def run_grid(cfg: TrainConfig, workdir: str | Path, *, sources: dict | None = None,
             on_start: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Train the grid and write ablation.csv/md/png in ``workdir``; returns a summary.
    ``on_start(workdir)`` runs once the checks have passed (train.py's record)."""
    _check(cfg)
    workdir = Path(workdir)
    configs, varying = grid(cfg)
    table = features_table(cfg, sources)
    schedule = Schedule(steps=cfg.steps, batch_size=cfg.data.batch_size, optim=cfg.optim,
                        chunk_steps=cfg.sweep.chunk_steps)
    workdir.mkdir(parents=True, exist_ok=True)
    if on_start is not None:
        on_start(workdir)
    log.info("training %d configurations (%s engine)", len(configs), cfg.sweep.engine)
    t0 = time.perf_counter()
    results = train_sweep(table, configs, schedule, engine=cfg.sweep.engine, workdir=workdir / "sweep")
    seconds = time.perf_counter() - t0
    rows = [_row(r) for r in results]
    summary = summarise(rows, varying)
    write_csv(workdir / "ablation.csv", rows)
    (workdir / "ablation.md").write_text(format_markdown(summary, varying, len(rows), seconds, cfg))
    if varying == ["relation_weight"]:
        plot(summary, workdir / "ablation.png")
    out = {"trainings": len(rows), "diverged": sum(r["diverged"] for r in rows), "seconds": round(seconds, 1),
           "varying": varying, "summary": summary, "engine": cfg.sweep.engine}
    (workdir / "ablation.json").write_text(json.dumps(out, indent=1, default=_none_for_nan) + "\n")
    return out


def _none_for_nan(value: Any) -> Any:
    return None if isinstance(value, float) and not np.isfinite(value) else float(value)


def _row(result: dict) -> dict:
    config = dataclasses.asdict(result["config"])
    row = {k: config[k] for k in ("relation_weight", "learning_rate", "decay", "weight_decay", "dropout", "seed", "fold")}
    row["diverged"] = result["diverged"]
    row["final_loss"] = float(result["loss"][-1])
    val = result["val"] or {}
    row.update({m: val.get(m, float("nan")) for m in METRICS})
    return row


def summarise(rows: list[dict], varying: list[str]) -> list[dict]:
    """Mean and std of each metric over folds and seeds, per setting of ``varying``
    (diverged trainings left out and counted)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in varying), []).append(row)
    summary = []
    for setting, members in sorted(groups.items()):
        ok = [m for m in members if not m["diverged"]]
        entry = dict(zip(varying, setting), trainings=len(members), diverged=len(members) - len(ok))
        for metric in METRICS:
            values = np.asarray([m[metric] for m in ok], float)
            values = values[np.isfinite(values)]
            entry[metric] = float(values.mean()) if values.size else float("nan")
            entry[f"{metric}_std"] = float(values.std()) if values.size else float("nan")
        summary.append(entry)
    return summary


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def format_markdown(summary: list[dict], varying: list[str], trainings: int, seconds: float, cfg: TrainConfig) -> str:
    lines = [
        f"# {cfg.name}: {trainings} trainings in {seconds:.1f} s ({cfg.sweep.engine} engine)",
        "",
        f"Drug head on the validation posts of each fold; mean ± std over folds {list(cfg.sweep.folds) or [cfg.data.val_fold]}"
        f" and seeds {list(cfg.sweep.seeds) or [cfg.seed]}; {cfg.steps} steps, batch {cfg.data.batch_size}, "
        f"backbone {cfg.model.backbone.name} ({build.resolve_weights(cfg).describe()}).",
        "",
        "| " + " | ".join(varying + ["accuracy (all-negative)", "precision", "recall", "F1", "AUC", "diverged"]) + " |",
        "|" + "---|" * (len(varying) + 6),
    ]
    for entry in summary:
        cells = [f"{entry[k]:g}" for k in varying]
        cells.append(f"{entry['accuracy']:.3f} ± {entry['accuracy_std']:.3f} ({entry['all_negative_accuracy']:.3f})")
        cells += [f"{entry[m]:.3f} ± {entry[m + '_std']:.3f}" for m in ("precision", "recall", "f1", "auc")]
        cells.append(str(entry["diverged"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    """F1 and AUC against the relation weight, mean ± std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = np.asarray([e["relation_weight"] for e in summary])
    fig, ax = plt.subplots(figsize=(6, 4))
    for metric, colour in (("f1", "tab:blue"), ("auc", "tab:orange")):
        mean = np.asarray([e[metric] for e in summary])
        std = np.asarray([e[f"{metric}_std"] for e in summary])
        ax.plot(weights, mean, marker="o", color=colour, label=metric.upper() if metric == "auc" else "F1")
        ax.fill_between(weights, mean - std, mean + std, color=colour, alpha=0.2)
    ax.set_xlabel("task-relation weight")
    ax.set_ylabel("drug head, validation")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
