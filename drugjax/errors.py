"""Errors a user can fix, and the one way every command line prints them.

A :class:`UserError` says in one sentence what is wrong and how to fix it, naming the
file, line or config field (a bad config, a bad dataset, missing weights, a diverged
run). Each command line catches :data:`USER_ERRORS` at its top and hands the error to
:func:`print_error`, so the user sees one escaped ``error:`` line and an exit status
instead of a library's traceback. Each module keeps its own subclass (``ConfigError``,
``WeightsError``, ...), so callers can still catch one kind.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from drugjax.runtime.textsafe import escape_controls


class UserError(Exception):
    """An error whose message names what to fix; no traceback is shown for it."""

    #: True where the message escaped the data it quotes itself and its newlines are
    #: layout (a list of rejected records), so the printer leaves it as it is.
    preescaped: bool = False


#: What a command line reports as one line: our errors, and a file the user named that
#: is not there.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)


class DiskFullError(UserError):
    """A write failed for want of space: a full disk, a quota or a file-size limit."""


#: What a full disk, an exhausted quota and a file-size limit (``ulimit -f``) fail with.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Writers in C++ say the OS error in their message only: tensorstore (orbax's checkpoint
# writer) its number, array_record (tfds's shards) its text.
_TENSORSTORE_ERRNO = re.compile(r"os_error_code='(\d+)'")


# SQLite (optuna's study storage) says SQLITE_FULL in words only.
_SQLITE_FULL = "database or disk is full"


def _errno_in_message(message: str) -> int | None:
    if _SQLITE_FULL in message:
        return errno.ENOSPC
    found = _TENSORSTORE_ERRNO.search(message)
    if found:
        return int(found.group(1)) if int(found.group(1)) in DISK_FULL_ERRNOS else None
    return next((code for code in DISK_FULL_ERRNOS if os.strerror(code) in message), None)


def disk_full_errno(error: BaseException | str | None) -> int | None:
    """The errno of a full disk behind ``error`` (it, or an error it was raised from or
    while handling), or quoted in a library's message, else None."""
    if isinstance(error, str):
        return _errno_in_message(error)
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return error.errno
        if _errno_in_message(str(error)) is not None:
            return _errno_in_message(str(error))
        error = error.__cause__ or error.__context__
    return None


def disk_full_error(error: BaseException, where: str | Path, then: str = "") -> DiskFullError | None:
    """``error`` said as one line when it is a full disk (None when it is not):
    ``where`` names what could not be written, ``then`` what the next run does."""
    code = disk_full_errno(error)
    if code is None:
        return None
    return DiskFullError(f"the disk is full: writing {where} failed ({os.strerror(code)}). Free space there "
                         f"(or raise the quota or file-size limit) and run the same command again"
                         f"{'; ' + then if then else ''}")


@contextmanager
def full_disk_reported(where: str | Path, then: str = "") -> Iterator[None]:
    """Inside the block, a write that fails for want of space raises :class:`DiskFullError`
    naming ``where`` (one ``error:`` line at the command line instead of a traceback);
    an error already said in words passes through as it is."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        full = disk_full_error(e, where, then)
        if full is None:
            raise
        raise full from e


def error_message(error: BaseException) -> str:
    """The error's message, safe for a terminal: control characters in text that came
    from data (file names, captions) are written as visible escapes."""
    if getattr(error, "preescaped", False):
        return str(error)
    return escape_controls(error)


def print_error(error: BaseException, file: TextIO | None = None) -> str:
    """Print ``error: <message>`` on ``file`` (stderr) and return the message."""
    message = error_message(error)
    print(f"error: {message}", file=file or sys.stderr, flush=True)
    return message
