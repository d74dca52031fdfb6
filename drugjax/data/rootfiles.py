"""Reading and rewriting the JSON-lines files of a dataset ROOT without ever leaving
half-written ones.

The importer and the label merger add to files a researcher may have labelled by hand.
So every write goes to a temporary file beside the target (same folder, hence same
file system) and replaces it with ``os.replace``, which is atomic
(:mod:`drugjax.runtime.atomic`): an interrupted run or a full disk leaves the old file or
the new one, never a mix, and the next run resumes. Lines are
kept as raw bytes so that records this code does not change stay byte for byte what
they were.
"""

from __future__ import annotations

import json
from pathlib import Path

from drugjax.runtime import atomic


def json_line(record: dict) -> bytes:
    """One record as a JSON line (UTF-8, sorted keys, no trailing newline)."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")


def read_lines(path: Path) -> list[bytes]:
    """The lines of ``path`` without their line ends; ``[]`` when it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b"\r") for line in lines]


def parse_line(line: bytes) -> dict | None:
    """The JSON object on ``line``, or None for a blank, unparsable or non-object line
    (the caller keeps such lines as they are; ``validate`` reports them)."""
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    if not line.strip():
        return None
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def write_lines(path: Path, lines: list[bytes]) -> None:
    """Replace ``path`` by ``lines`` atomically (temporary file in the same folder)."""
    write_bytes(path, b"".join(line + b"\n" for line in lines))


def write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temporary file in the same folder); a full
    disk is a :class:`drugjax.errors.DiskFullError` naming ``path``, the file untouched."""
    atomic.write_bytes(path, data)
