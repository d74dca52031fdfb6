"""What a search leaves for the researcher: search.csv, search.md, search.html,
search-best.txt and TensorBoard hparams (drugjax.training.search runs the study).

* ``search.csv``: one row per trial — number, round, state, the value (the metric's mean
  over the folds), the parameters, the metric on each fold, the mean of every metric
  beside the all-negative accuracy, and why a failed trial failed;
* ``search.md``: the best trial with its train.py command line, the top 10, the
  parameters' importances (fANOVA, ``optuna.importance``);
* ``search.html``: search.md and the plots (optimisation history, one slice per
  parameter), one self-contained page;
* ``search-best.txt``: the best trial as train.py command lines, one per fold;
* ``tensorboard/search/``: one hparams entry per finished trial.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.runtime import atomic
from drugjax.runtime.html_page import markdown_to_html, page, png_image
from drugjax.training.config import TrainConfig
from drugjax.training.search import PARAMETERS, folds_of, trial_overrides

METRICS = ("accuracy", "all_negative_accuracy", "precision", "recall", "f1", "auc")
TOP = 10


def trial_rows(study, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One row per trial, in trial order."""
    folds = folds_of(cfg)
    names = [name for name in PARAMETERS if name in cfg.search.space]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        per_fold = trial.user_attrs.get("folds", {})
        row = {"trial": trial.number, "round": trial.user_attrs.get("round", ""), "state": trial.state.name,
               "value": trial.value if trial.value is not None else float("nan")}
        row.update({name: trial.params.get(name, "") for name in names})
        for fold in folds:
            row[f"{cfg.search.metric}_fold{fold}"] = per_fold.get(str(fold), {}).get(cfg.search.metric, float("nan"))
        for metric in METRICS:
            values = [m[metric] for m in per_fold.values() if metric in m]
            row[metric] = float(np.mean(values)) if values else float("nan")
        row["failure"] = trial.user_attrs.get("failure", "")
        rows.append(row)
    return rows


def best_commands(study, cfg: TrainConfig, command_overrides: list[str]) -> list[tuple[int, float, str]]:
    """(fold, the best trial's metric on it, the train.py line that trains it there)."""
    trial = study.best_trial
    kept = [arg for arg in command_overrides
            if not arg.lstrip("+~").startswith(("search.", "name=", "workdir=", "data.val_fold=", "hydra"))]
    per_fold = trial.user_attrs.get("folds", {})
    lines = []
    for fold in folds_of(cfg):
        args = [*kept, "search.enabled=false", f"name={cfg.name}-best", *trial_overrides(cfg, trial.params),
                f"data.val_fold={fold}"]
        lines.append((fold, per_fold[str(fold)][cfg.search.metric],
                      "python train.py " + " ".join(shlex.quote(a) for a in args)))
    return lines


def importances(study, seed: int) -> tuple[dict[str, float] | None, str]:
    """The parameters' importances over the finished trials (mean decrease in impurity of
    a random forest fitted to them), or None and why not. Not fANOVA, optuna's default:
    optuna 2.x's fANOVA fails on scikit-learn >= 1.3's tree arrays."""
    import optuna

    finished = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) < 2:
        return None, "fewer than two finished trials"
    try:
        evaluator = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)
        return optuna.importance.get_param_importances(study, evaluator=evaluator), ""
    except (RuntimeError, ValueError) as e:  # e.g. a parameter that took one value only
        return None, str(e)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown(study, cfg: TrainConfig, rows: list[dict], commands: list, importance: tuple, seconds: float) -> str:
    search = cfg.search
    states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "FAIL")}
    lines = [f"# Search: {search.metric} of the drug head, {search.direction}d",
             "",
             f"{len(rows)} trials ({states['COMPLETE']} finished, {states['FAIL']} failed: diverged, told to the "
             f"study as FAIL), {search.sampler} sampler (seed {search.seed}), {search.batch} trials per round "
             f"trained together, {cfg.steps} steps each, validation fold(s) {', '.join(map(str, folds_of(cfg)))}; "
             f"{seconds:.0f} s in this process.",
             ""]
    if not commands:
        return "\n".join(lines + ["No trial finished: nothing to report as best."]) + "\n"
    best = study.best_trial
    finished = [r for r in rows if r["state"] == "COMPLETE"]
    baseline = np.nanmean([r["all_negative_accuracy"] for r in finished])
    lines += [f"## Best: trial {best.number}, {search.metric} {best.value:.4f}", ""]
    lines += [f"- {name} = {_cell(value)}" for name, value in best.params.items()]
    lines += ["", "Trained alone by train.py: the same batches and initial parameters, so the same figures up to "
              "float reassociation over the steps (on the paper world, AUC within 1e-3):", ""]
    lines += [f"- fold {fold} ({search.metric} {value:.4f}): `{command}`" for fold, value, command in commands]
    reverse = search.direction == "maximize"
    top = sorted(finished, key=lambda r: r["value"], reverse=reverse)[:TOP]
    names = [name for name in PARAMETERS if name in search.space]
    shown = ["accuracy", "precision", "recall", "f1", "auc"]  # means over the folds; the metric among them
    lines += ["", f"## Top {len(top)}", "",
              f"Accuracy beside the all-negative accuracy ({baseline:.3f}): a model at or under it finds nothing.", "",
              "| trial | " + " | ".join(names) + " | " + " | ".join(shown) + " |",
              "|---" * (len(names) + len(shown) + 1) + "|"]
    for r in top:
        cells = [str(r["trial"]), *(_cell(r[n]) for n in names), *(f"{r[m]:.4f}" for m in shown)]
        lines.append("| " + " | ".join(cells) + " |")
    scores, why_not = importance
    lines += ["", "## Parameter importances (random forest, mean decrease in impurity, over the finished trials)", ""]
    if scores is None:
        lines.append(f"Not computed: {why_not}.")
    else:
        lines += ["| parameter | importance |", "|---|---|"]
        lines += [f"| {name} | {score:.3f} |" for name, score in scores.items()]
    return "\n".join(lines) + "\n"


def plots(rows: list[dict], cfg: TrainConfig) -> list[tuple[str, bytes]]:
    """(name, PNG bytes): the optimisation history and one slice per parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finished = [r for r in rows if r["state"] == "COMPLETE"]
    if not finished:
        return []
    best_of = np.maximum.accumulate if cfg.search.direction == "maximize" else np.minimum.accumulate
    numbers = np.asarray([r["trial"] for r in finished])
    values = np.asarray([r["value"] for r in finished])
    figures = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(numbers, values, "o", alpha=0.6, label="trial")
    ax.plot(numbers, best_of(values), "-", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{cfg.search.metric} (validation)")
    ax.grid(alpha=0.3)
    ax.legend()
    figures.append(("optimisation history", _png(fig)))
    names = [name for name in PARAMETERS if name in cfg.search.space]
    columns = min(3, len(names))
    rows_of_plots = -(-len(names) // columns)
    fig, axes = plt.subplots(rows_of_plots, columns, figsize=(3.2 * columns, 2.8 * rows_of_plots), squeeze=False,
                             sharey=True)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        xs = [r[name] for r in finished]
        if isinstance(xs[0], str) or "choices" in cfg.search.space[name]:
            labels = sorted({str(x) for x in xs})
            ax.set_xticks(range(len(labels)), labels, rotation=30)
            xs = [labels.index(str(x)) for x in xs]
        elif cfg.search.space[name].get("log"):
            ax.set_xscale("log")
        ax.scatter(xs, values, c=numbers, cmap="viridis", s=14)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel(cfg.search.metric)
    figures.append(("slices (colour: trial number)", _png(fig)))
    return figures


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def write_tensorboard(rows: list[dict], cfg: TrainConfig, workdir: Path) -> None:
    """One hparams entry per finished trial under ``tensorboard/search`` (rewritten whole:
    drugjax's own folder)."""
    from tensorboardX import SummaryWriter

    folder = workdir / "tensorboard" / "search"
    shutil.rmtree(folder, ignore_errors=True)
    names = [name for name in PARAMETERS if name in cfg.search.space]
    with SummaryWriter(str(folder)) as writer:
        for row in rows:
            if row["state"] == "COMPLETE":
                writer.add_hparams({name: row[name] for name in names},
                                   {f"hparam/{cfg.search.metric}": row["value"], "hparam/f1": row["f1"],
                                    "hparam/auc": row["auc"]}, name=f"trial-{row['trial']:04d}")


def write_outputs(study, cfg: TrainConfig, workdir: Path, *, seconds: float,
                  command_overrides: list[str]) -> dict[str, Any]:
    """Write every output and return a summary (the best value, trial, commands)."""
    rows = trial_rows(study, cfg)
    finished = [r for r in rows if r["state"] == "COMPLETE"]
    commands = best_commands(study, cfg, command_overrides) if finished else []
    text = markdown(study, cfg, rows, commands, importances(study, cfg.search.seed), seconds)
    write_csv(workdir / "search.csv", rows)
    atomic.write_text(workdir / "search.md", text)
    images = [png_image(name, data) for name, data in plots(rows, cfg)]
    atomic.write_text(workdir / "search.html", page("drugjax search", [markdown_to_html(text), *images]))
    if commands:
        atomic.write_text(workdir / "search-best.txt", "".join(
            f"# trial {study.best_trial.number}, fold {fold}: {cfg.search.metric} {value:.4f}\n{command}\n"
            for fold, value, command in commands))
    if cfg.tensorboard:
        write_tensorboard(rows, cfg, workdir)
    summary = {"trials": len(rows), "finished": len(finished), "failed": sum(r["state"] == "FAIL" for r in rows),
               "best_trial": study.best_trial.number if finished else None,
               "best_value": study.best_trial.value if finished else None,
               "best_params": study.best_trial.params if finished else None,
               "commands": [c for _, _, c in commands], "seconds": round(seconds, 1)}
    atomic.write_text(workdir / "search.json", json.dumps(summary, indent=1) + "\n")
    return summary
