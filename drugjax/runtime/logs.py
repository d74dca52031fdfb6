"""Quieter library logs: absl (orbax, tfds) messages that are noise by drugjax's design."""

from __future__ import annotations

import logging

_NOISE: set[str] = set()


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in _NOISE)


_FILTER = _DropNoise()


def quiet_absl(fragment: str) -> None:
    """Drop absl log records whose message contains ``fragment`` (one filter for all)."""
    _NOISE.add(fragment)
    absl = logging.getLogger("absl")
    if _FILTER not in absl.filters:
        absl.addFilter(_FILTER)
