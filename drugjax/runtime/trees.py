"""Nested mappings (parameter trees, configs) flattened and made plain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """``{("a", "b"): leaf}`` for every leaf of a nested mapping (empty mappings vanish)."""
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix + (key,)))
        else:
            flat[prefix + (key,)] = value
    return flat


def plain(tree: Any) -> Any:
    """Flax FrozenDicts (any mapping) -> dicts, so trees from different sources compare equal."""
    if isinstance(tree, Mapping):
        return {k: plain(v) for k, v in tree.items()}
    return tree
