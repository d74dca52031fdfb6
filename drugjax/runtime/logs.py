"""Quieter library logs: absl (orbax, tfds) messages that are noise by drugjax's design,
and the echoes of a failed checkpoint save, which the command reports once itself."""

from __future__ import annotations

import logging
import sys

from drugjax.errors import disk_full_errno

_NOISE: set[str] = set()


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in _NOISE)


class _DropFullDisk(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return disk_full_errno(error) is None and disk_full_errno(record.getMessage()) is None


_FILTER = _DropNoise()
_FULL_DISK = _DropFullDisk()


def quiet_absl(fragment: str) -> None:
    """Drop absl log records whose message contains ``fragment`` (one filter for all)."""
    _NOISE.add(fragment)
    absl = logging.getLogger("absl")
    if _FILTER not in absl.filters:
        absl.addFilter(_FILTER)


def quiet_full_disk_echoes() -> None:
    """Keep a save that failed for want of space to the one ``error:`` line the command
    prints (drugjax.errors.DiskFullError), without its echoes on stderr.

    When one write of an orbax save fails, orbax logs each of the save's threads with its
    traceback (through absl), asyncio logs each task whose error nobody read, and
    tensorstore, whose other writes still run, hands each back to the event loop orbax has
    closed meanwhile: an unraisable "Event loop is closed", printed as a bare traceback.
    The failure itself is raised where the save is waited for; these say nothing more.
    """
    for name in ("absl", "asyncio"):
        logger = logging.getLogger(name)
        if _FULL_DISK not in logger.filters:
            logger.addFilter(_FULL_DISK)
    if getattr(sys.unraisablehook, "drops_closed_loops", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        previous(unraisable)

    hook.drops_closed_loops = True
    sys.unraisablehook = hook
