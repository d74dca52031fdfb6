"""The record of a Hydra multirun: one sweep per directory, and a summary of its jobs.

Hydra writes ``multirun.yaml`` into the sweep directory and runs each job in a numbered
subdirectory; running the same sweep again resumes every job in place. A *different*
sweep pointed at the same directory would overwrite ``multirun.yaml`` while the jobs'
results stayed from the first one, so :class:`MultirunRecord` refuses it before anything
is written. When the sweep ends it writes ``summary.csv`` and ``summary.md`` across the
jobs (overrides, status, objective, best step, metrics).

Enabled for train.py in ``conf/train.yaml`` (``hydra.callbacks.multirun_record``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from drugjax.runtime.textsafe import escape_controls

METRIC_COLUMNS = ("accuracy", "precision", "recall", "f1", "auc")


def _sweep_overrides(config: DictConfig) -> list[str]:
    return sorted(OmegaConf.to_container(config.hydra.overrides.task))


def check_same_sweep(sweep_dir: Path, overrides: list[str]) -> str | None:
    """Why ``sweep_dir`` cannot take the sweep ``overrides``, or None when it can (new, or
    the same sweep, which then resumes)."""
    saved_file = sweep_dir / "multirun.yaml"
    if not saved_file.exists():
        return None
    try:
        saved = sorted(OmegaConf.to_container(OmegaConf.load(saved_file).hydra.overrides.task))
    except Exception as e:  # noqa: BLE001 - a damaged file is not ours to overwrite either
        return f"{saved_file} cannot be read ({type(e).__name__}); it is left as it is"
    if saved == overrides:
        return None
    return (f"{sweep_dir} holds another sweep (its overrides: {' '.join(saved) or 'none'}; now: "
            f"{' '.join(overrides) or 'none'}); its jobs' results would be mixed with this one's")


class MultirunRecord(Callback):
    """Hydra callback: refuse a different sweep in a used directory; summarise at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        problem = check_same_sweep(sweep_dir, _sweep_overrides(config))
        if problem:
            print(f"error: {escape_controls(problem)}. Nothing was written. Give this sweep its own "
                  "directory: name=... or hydra.sweep.dir=PATH", file=sys.stderr, flush=True)
            sys.exit(1)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = summarise(sweep_dir)
        if rows:
            write_summary(sweep_dir, rows)
            print(f"summary of {len(rows)} jobs: {sweep_dir / 'summary.md'}", flush=True)


def _job_row(job_dir: Path) -> dict[str, Any]:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.exists() else []
    row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(overrides)}
    error_file = job_dir / "error.txt"
    results_file = job_dir / "results.json"
    if error_file.exists():
        row.update(status="failed", error=error_file.read_text().strip())
        return row
    if not results_file.exists():
        row["status"] = "not finished"
        return row
    results = json.loads(results_file.read_text())
    val = results.get("val") or {}
    row.update(
        status="interrupted" if results.get("interrupted") else "finished",
        step=results.get("step"),
        objective=results.get("objective"),
        best_step=results.get("best_step"),
        **{m: val.get(m) for m in METRIC_COLUMNS},
    )
    return row


def summarise(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (numbered subdirectories of ``sweep_dir``), in job order."""
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    return [_job_row(job) for job in jobs]


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["job", "overrides", "status", "objective", "best_step", "step", *METRIC_COLUMNS, "error"]
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
