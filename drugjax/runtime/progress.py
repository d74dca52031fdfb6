"""Progress of the long steps (world generation, dataset builds, feature extraction,
evaluate.py's stages), so that a working run never looks like a hung one.

On a terminal: a tqdm bar on stderr. Elsewhere (a log file, CI, a pipe): a log line at
most every :data:`LOG_EVERY_S` seconds with the count, the rate and the time left, not
bar redraws. ``train.py progress=false`` / ``evaluate.py progress=false`` turn both off
(:func:`set_enabled`), as the tests do.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("drugjax.progress")

#: Seconds between two log lines when stderr is not a terminal.
LOG_EVERY_S = 10.0

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn every progress report of this process on or off."""
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


class Progress:
    """``with Progress(total, "extracting features", unit="img") as bar: bar.update(n)``."""

    def __init__(self, total: int | None, desc: str, *, unit: str = "it", log_every_s: float = LOG_EVERY_S):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self._log_every_s = log_every_s
        self._start = self._last_log = time.monotonic()
        self._bar: Any = None
        self._on = _enabled
        if self._on and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if not self._on:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            return
        now = time.monotonic()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """``desc: 1,200/11,648 img (85.3 img/s, 2 min 2 s left)``."""
        elapsed = max((now if now is not None else time.monotonic()) - self._start, 1e-9)
        rate = self.done / elapsed
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        text = f"{self.desc}: {count} {self.unit} ({rate:.1f} {self.unit}/s"
        if self.total is not None and rate > 0:
            text += f", {_duration((self.total - self.done) / rate)} left"
        return text + ")"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
