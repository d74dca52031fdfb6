"""Evaluation of a train state on a pass of validation batches.

One small API, as big_vision's evaluators have: ``Evaluator(...).run(state, batches)``
returns the metrics of one binary head (the drug head in train.py; evaluate.py reuses it
for any head and data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from drugjax.tasks import INSTAGRAM_POSITIVE
from drugjax.metrics import binary_metrics
from drugjax.training.steps import DataParallel


class Evaluator:
    """Metrics of head ``column`` of the model's outputs against ``kind == positive_kind``.

    Args:
      eval_fn: the eval step of :func:`drugjax.training.steps.make_steps`, returning
        per-example ``prob`` (examples, tasks) and ``loss``.
      parallel: how batches are put on the devices.
      column: the head's column in ``prob`` (its index in ``model.tasks``).
      positive_kind: the record kind that counts as positive (drug-related posts).
      threshold: probability at which a prediction counts as positive.
    """

    def __init__(self, eval_fn: Callable, parallel: DataParallel, column: int,
                 positive_kind: int = INSTAGRAM_POSITIVE, threshold: float = 0.5):
        self.eval_fn, self.parallel, self.column = eval_fn, parallel, column
        self.positive_kind, self.threshold = positive_kind, threshold

    def run(self, state: Any, batches: Iterable[dict]) -> dict[str, float]:
        """Accuracy, precision, recall, F1, AUC, the all-negative accuracy and the mean
        loss over the valid examples of ``batches``."""
        probs, labels, losses = [], [], []
        for batch in batches:
            out = jax.device_get(self.eval_fn(state, self.parallel.put_batch(batch)))
            valid = np.asarray(batch["valid"]).reshape(-1)
            probs.append(np.asarray(out["prob"]).reshape(valid.size, -1)[valid, self.column])
            labels.append((np.asarray(batch["kind"]).reshape(-1)[valid] == self.positive_kind).astype(int))
            losses.append(np.asarray(out["loss"]).reshape(-1)[valid])
        metrics = binary_metrics(np.concatenate(labels), np.concatenate(probs), self.threshold)
        metrics["loss"] = float(np.mean(np.concatenate(losses)))
        return metrics


class ClassifierEvaluator:
    """Top-1 and top-5 accuracy of a classifier whose batches hold the class in ``kind``
    (the pretext pre-training), beside the accuracy of always answering the most common
    class (its trivial baseline), and the mean loss."""

    def __init__(self, eval_fn: Callable, parallel: DataParallel):
        self.eval_fn, self.parallel = eval_fn, parallel

    def run(self, state: Any, batches: Iterable[dict]) -> dict[str, float]:
        probs, labels, losses = [], [], []
        for batch in batches:
            out = jax.device_get(self.eval_fn(state, self.parallel.put_batch(batch)))
            valid = np.asarray(batch["valid"]).reshape(-1)
            probs.append(np.asarray(out["prob"]).reshape(valid.size, -1)[valid])
            labels.append(np.asarray(batch["kind"]).reshape(-1)[valid])
            losses.append(np.asarray(out["loss"]).reshape(-1)[valid])
        prob, label = np.concatenate(probs), np.concatenate(labels)
        top5 = np.argsort(-prob, axis=1)[:, :5]
        return {
            "accuracy": float(np.mean(top5[:, 0] == label)),
            "top5_accuracy": float(np.mean((top5 == label[:, None]).any(axis=1))),
            "majority_accuracy": float(np.bincount(label).max() / len(label)),
            "n": int(len(label)),
            "loss": float(np.mean(np.concatenate(losses))),
        }
