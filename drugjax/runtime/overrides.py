"""Command-line overrides checked against a config schema before Hydra starts.

Hydra answers ``python train.py modle.kind=heads`` with five lines and a hint to write
``+modle.kind=heads``, and following the hint ends in a traceback from the structured
config. :func:`check_overrides` reads the overrides first and refuses one whose key is in
neither the schema nor the config groups, with the nearest valid key, in one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from drugjax.errors import UserError, print_error


class OverrideError(UserError, ValueError):
    """An override names a config key that does not exist."""


def schema_keys(schema: type) -> set[str]:
    """Every dotted key of a dataclass schema, nodes included: ``model``, ``model.backbone``,
    ``model.backbone.name``, ..."""
    keys: set[str] = set()

    def walk(obj: Any, prefix: str) -> None:
        for field in dataclasses.fields(obj):
            key = f"{prefix}{field.name}"
            keys.add(key)
            value = getattr(obj, field.name)
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")

    walk(schema(), "")
    return keys


def open_keys(schema: type) -> set[str]:
    """Keys of a schema whose value is a free-form mapping (``search.space``): any key
    below them is the command's to check, not the schema's."""
    keys: set[str] = set()

    def walk(obj: Any, prefix: str) -> None:
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{field.name}.")
            elif isinstance(value, dict):
                keys.add(f"{prefix}{field.name}")

    walk(schema(), "")
    return keys


def override_keys(args: Sequence[str]) -> list[tuple[str, str]]:
    """``(argument, key)`` for each ``key=value``, ``+key=value``, ``++key=value`` or
    ``~key`` argument; Hydra's own flags (``-m``, ``--cfg job``, ...) are not overrides."""
    out = []
    for arg in args:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        out.append((arg, key.split("@", 1)[0]))  # group@package=option: the group
    return out


def check_overrides(args: Sequence[str], schema: type, groups: Iterable[str], command: str) -> None:
    """Raise :class:`OverrideError` for the first override whose key is neither a key of
    ``schema`` nor a config group (``groups``: ``data``, ``experiment``, ...). Keys of
    Hydra's own config (``hydra.run.dir``, ``hydra/launcher``) are left to Hydra."""
    keys = schema_keys(schema)
    below_open = tuple(f"{key}." for key in open_keys(schema))
    groups = set(groups)
    for arg, key in override_keys(args):
        if key in keys or key.split("/", 1)[0] in groups or key == "hydra" or key.startswith("hydra."):
            continue  # a schema key, a config group (or a group inside one), Hydra's own
        if key.startswith(below_open):
            continue  # inside a free-form mapping, checked by the command itself
        nearest = difflib.get_close_matches(key, sorted(keys | groups), n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        raise OverrideError(
            f"{arg}: {command}'s config has no key {key!r}{hint} "
            f"(every key and its value: python {command} --cfg job)"
        )


def exit_on_unknown_keys(schema: type, command: str) -> None:
    """The command line's first step: an override in ``sys.argv`` naming no key of
    ``schema`` or of the shipped config groups ends in one ``error:`` line naming the
    nearest key, exit 2 (Hydra's own status for a bad command line)."""
    from drugjax.conf import groups

    try:
        check_overrides(sys.argv[1:], schema, groups(), command)
    except OverrideError as e:
        print_error(e)
        sys.exit(2)
