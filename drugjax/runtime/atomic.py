"""Files replaced whole or not at all, and a full disk said in one line.

An output that a user or a later step reads (a table, a report, a cache entry, a
dataset's records) is written to a temporary file beside it (same folder, so the same
file system) and renamed over it when complete, which is atomic: a kill or a full disk
leaves the old file or the new one, never a mix, and never half a file that looks
finished. A write that fails for want of space raises :class:`DiskFullError` naming the
file, and its temporary file is removed, which gives the space back.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from drugjax.errors import full_disk_reported


def _temporary_beside(path: Path) -> tuple[int, Path]:
    """A new file next to ``path``, created with the permissions a plain ``open`` would
    give (``tempfile.mkstemp`` makes them private to the owner)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), tmp
        except FileExistsError:
            continue


@contextmanager
def replacing(path: str | Path, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """``with replacing(path) as f: f.write(...)``: ``path`` is replaced by what was
    written when the block ends without an error, and left as it was otherwise.
    ``mode`` and ``open_kwargs`` as for ``open`` ("w" with ``newline=""`` for csv)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary_beside(path)
    try:
        with full_disk_reported(path):
            with os.fdopen(fd, mode, **open_kwargs) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # ours alone; the target is untouched
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically."""
    with replacing(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` by ``text`` atomically."""
    write_bytes(path, text.encode(encoding))
