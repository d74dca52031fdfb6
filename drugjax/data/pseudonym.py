"""Pseudonymisation of the people in an import: keyed hashes for usernames, @mentions
and post ids.

The same key always gives the same pseudonym, so a later import into the same ROOT
joins up (incremental imports, timelines, labels), and nobody without the key can
recompute the mapping from a public username. The key therefore lives outside ROOT:
whoever gets ROOT alone cannot undo it. This is pseudonymisation, not anonymisation:
captions, comments and pictures can still identify a person.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from drugjax.errors import UserError

# Instaloader's own mention pattern (instaloader/structures.py, ``_mention_regex``,
# MIT licence), so that what is replaced is exactly what ``Post.caption_mentions`` finds.
MENTION_REGEX = re.compile(r"(?:^|\W|_)(?:@)(\w(?:(?:\w|(?:\.(?!\.))){0,28}(?:\w))?)", re.ASCII)

KEY_BYTES = 32


class KeyFileError(UserError, ValueError):
    """A key file that cannot be used; the message says which and what to do."""


def load_or_create_key(path: Path, *, forbidden: list[Path]) -> tuple[bytes, bool]:
    """The key in ``path`` (created with 32 random bytes, mode 0600, when missing).

    ``forbidden`` are folders the key must not be in (ROOT and the sources): a key kept
    beside the data would undo the pseudonymisation. Returns (key, created).
    """
    real = Path(os.path.realpath(path))
    for folder in forbidden:
        f = Path(os.path.realpath(folder))
        if real == f or f in real.parents:
            raise KeyFileError(f"the key file {path} is inside {folder}; keep it outside ROOT and the "
                            f"Instaloader folders (whoever has the key can undo the pseudonyms)")
    if real.exists():
        if not real.is_file():
            raise KeyFileError(f"the key file {path} is not a file")
        key = real.read_bytes().strip()
        if len(key) < 16:
            raise KeyFileError(f"the key file {path} holds {len(key)} bytes; a key needs at least 16 "
                            f"(point --pseudonymize at a new path and one is created)")
        return key, False
    real.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(KEY_BYTES).encode("ascii")
    # O_EXCL: never overwrite a file that appeared meanwhile; 0600: the key is a secret.
    fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key, True


class Pseudonymizer:
    """Keyed pseudonyms: ``u`` + 16 hex digits for accounts, ``p`` + 16 for posts."""

    def __init__(self, key: bytes):
        self._key = key

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    @property
    def key_check(self) -> str:
        """A value recorded in ROOT that tells whether a later import uses the same key,
        without revealing the key."""
        return self._digest("key-check", "drugjax")

    def username(self, name: str) -> str:
        # Instagram usernames are case-insensitive; Instaloader lowercases them too.
        return "u" + self._digest("user", name.lower())

    def post_id(self, shortcode: str) -> str:
        # A shortcode is the post's public address (instagram.com/p/<shortcode>), which
        # leads straight to the account.
        return "p" + self._digest("post", shortcode)

    def text(self, text: str) -> str:
        """``text`` with each @mention replaced by ``@`` + the mentioned account's pseudonym."""

        def swap(m: re.Match) -> str:
            lead = m.group(0)[: m.start(1) - m.start(0)]
            return lead + self.username(m.group(1))

        return MENTION_REGEX.sub(swap, text)
