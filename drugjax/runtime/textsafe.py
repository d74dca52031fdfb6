"""Printing text that comes from data (captions, usernames, file names) safely.

Collected text is untrusted: an ANSI escape sequence in a caption or a folder name would
otherwise be interpreted by the terminal that shows a report (colours, cursor moves,
even rewriting earlier lines), and a newline would split one message into two.
"""

from __future__ import annotations

import unicodedata

# Unicode bidirectional overrides and isolates reorder what the terminal shows
# ("Trojan Source"); they are format characters (Cf), not controls, so named here.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: object) -> str:
    """``str(text)`` with control characters written as visible escapes.

    C0/C1 controls (ESC, NUL, newline, ...), line/paragraph separators, bidirectional
    overrides and lone surrogates (undecodable bytes in file names) become ``\\n``,
    ``\\x1b``, ``\\u202e``...; everything else, emoji and non-Latin scripts included, is
    kept as it is.
    """
    text = str(text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif cat in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: object) -> str:
    """``str(text)`` safe to open in a spreadsheet: a leading ``'`` where the program would
    otherwise run the cell as a formula (``=HYPERLINK(...)``, ``+1 555``, ``@mention``)."""
    text = str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text
