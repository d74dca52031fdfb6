"""Validation metrics of the drug head and the run's metric writers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

METRICS = ("accuracy", "precision", "recall", "f1", "auc")


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at ``threshold``) and ROC AUC of binary scores.

    AUC is NaN when only one class is present (it is undefined there).
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    prob = np.asarray(prob, np.float64).ravel()
    if y_true.shape != prob.shape:
        raise ValueError(f"labels and scores differ in length: {y_true.shape} vs {prob.shape}")
    if y_true.size == 0:
        raise ValueError("no validation examples: check data.val_fold and the data")
    pred = (prob >= threshold).astype(int)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "precision": float(skm.precision_score(y_true, pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, pred, zero_division=0)),
        "auc": float(skm.roc_auc_score(y_true, prob)) if len(np.unique(y_true)) == 2 else math.nan,
        "n": int(y_true.size),
        "positives": int(y_true.sum()),
    }
    return out


def jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None  # JSON has no NaN
    if isinstance(v, np.integer):
        return int(v)
    return v


class MetricWriter:
    """Scalars to ``<run>/metrics.jsonl`` (one JSON object per line: step, split and the
    values) and, optionally, to TensorBoard event files under ``<run>/tensorboard``
    (written with tensorboardX, no TensorFlow)."""

    def __init__(self, workdir: str | Path, *, tensorboard: bool = True, enabled: bool = True,
                 resume_step: int | None = None):
        """``resume_step``: the run resumes from a checkpoint at that step; points written
        after it (by the run that was cut short) are dropped from both records."""
        self.path = Path(workdir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if resume_step is not None:
            self.truncate_after(resume_step)
        if enabled and tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step tells TensorBoard to discard the earlier events from that step on.
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=purge)

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps after ``step`` (the run resumes from a checkpoint there and
        will write them again)."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
        self.path.write_text("".join(l + "\n" for l in keep))

    def write(self, step: int, split: str, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **jsonable(values)}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float, np.number)) and math.isfinite(float(v)):
                    self._tb.add_scalar(f"{split}/{k}", float(v), int(step))
            self._tb.flush()  # on disk at every log boundary: a SIGKILL loses nothing written

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
