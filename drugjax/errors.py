"""Errors a user can fix, and the one way every command line prints them.

A :class:`UserError` says in one sentence what is wrong and how to fix it, naming the
file, line or config field (a bad config, a bad dataset, missing weights, a diverged
run). Each command line catches :data:`USER_ERRORS` at its top and hands the error to
:func:`print_error`, so the user sees one escaped ``error:`` line and an exit status
instead of a library's traceback. Each module keeps its own subclass (``ConfigError``,
``WeightsError``, ...), so callers can still catch one kind.
"""

from __future__ import annotations

import sys
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
