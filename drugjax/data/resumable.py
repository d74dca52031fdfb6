"""The save/resume protocol shared by drugjax's training batch iterators.

A training iterator (the image pipeline's ``TrainLoader``, the feature cache's
``FeatureLoader``) yields batch ``n`` as a pure function of its data settings and
``n``. Its state is therefore the position of the next batch plus those settings, as
JSON: a checkpoint stores it, and :meth:`Resumable.set_state` on an iterator built with
the same settings continues on exactly the next batch. The settings hold the *global*
batch, never the device layout, so a run may resume on another number of devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATE_VERSION = 2  # 1 recorded per_device_batch and num_devices instead of global_batch


def upgrade_state(state: Any) -> Any:
    """A version-1 state as version 2: the same position and data, layout folded in."""
    if not isinstance(state, Mapping) or state.get("version") != 1 or not isinstance(state.get("config"), Mapping):
        return state
    config = dict(state["config"])
    if "per_device_batch" in config and "num_devices" in config:
        config["global_batch"] = int(config.pop("per_device_batch")) * int(config.pop("num_devices"))
    return {**state, "version": STATE_VERSION, "config": config}


class Resumable:
    """Mixin: ``get_state``/``set_state`` from ``self._position`` and ``self._config``.

    Subclasses set both in ``__init__``, name themselves in ``state_name`` (for messages)
    and may override :meth:`_seek` to restart their reading at a new position.
    """

    state_name = "batch iterator"
    _position: int
    _config: dict

    def get_state(self) -> dict:
        """The position of the next batch and the data settings, as JSON-serialisable data."""
        return {"version": STATE_VERSION, "config": self._config, "next_batch": self._position}

    def set_state(self, state: Mapping) -> None:
        """Continue from a state returned by :meth:`get_state` of an equivalent iterator."""
        state = upgrade_state(state)
        if (
            not isinstance(state, Mapping)
            or state.get("version") != STATE_VERSION
            or not isinstance(state.get("next_batch"), int)
            or state["next_batch"] < 0
            or not isinstance(state.get("config"), Mapping)
        ):
            raise ValueError(
                f"not a drugjax {self.state_name} state: {str(state)[:200]} "
                "(expected the dict get_state() returns)"
            )
        if state["config"] != self._config:
            diff = {k: (state["config"].get(k), v) for k, v in self._config.items() if state["config"].get(k) != v}
            raise ValueError(
                f"the {self.state_name} state was saved with different data settings "
                f"(saved, current): {diff}; resume with the same data, seed and global batch size"
            )
        self._seek(state["next_batch"])

    def _seek(self, position: int) -> None:
        self._position = position
