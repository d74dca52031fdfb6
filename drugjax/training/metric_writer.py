"""The run's metric records: metrics.jsonl and TensorBoard events (the metrics
themselves are computed by :mod:`drugjax.metrics`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.metrics import jsonable
from drugjax.runtime import atomic


class MetricWriter:
    """Scalars to ``<run>/metrics.jsonl`` (one JSON object per line: step, split and the
    values) and, optionally, to TensorBoard event files under ``<run>/tensorboard``
    (written with tensorboardX, no TensorFlow)."""

    def __init__(self, workdir: str | Path, *, tensorboard: bool = True, enabled: bool = True,
                 resume_step: int | None = None):
        """``resume_step``: the step the run starts from (its checkpoint's, or 0 when it
        starts afresh); points written after it by an attempt that was cut short are
        dropped from both records."""
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
        # Atomically: a kill or a full disk during the rewrite keeps the earlier lines.
        atomic.write_text(self.path, "".join(l + "\n" for l in keep))

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
