"""Text from data, made safe to print: control characters never reach the terminal.

Captions, ids, image paths and file names come from data drugjax did not write. An ANSI
escape sequence in ``posts.jsonl`` printed raw could rewrite the user's terminal (move
the cursor, hide lines, set the window title). Every message built from data goes
through :func:`printable`.
"""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates reorder the text around them on screen.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with control and bidirectional-control characters escaped
    (``\\x1b`` for ESC, ``\\u202e`` for RIGHT-TO-LEFT OVERRIDE); other text unchanged."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\u200d" or ch in _BIDI_CONTROLS else ch
        for ch in text
    )
