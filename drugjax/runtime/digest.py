"""SHA-256 digests that key caches: one place for the rules, so two caches never hash
the same thing two ways."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def digest_bytes(*chunks: bytes, length: int = 16) -> str:
    """Hex SHA-256 of the chunks in order, cut to ``length`` characters."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:length]


def digest_json(value: Any, length: int = 16) -> str:
    """Digest of ``value`` as canonical JSON (sorted keys; other types by ``str``)."""
    return digest_bytes(json.dumps(value, sort_keys=True, default=str).encode(), length=length)


def digest_file(path: str | Path, length: int = 64) -> str:
    """Digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
