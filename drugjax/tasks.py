"""The task tree of the paper (Fig. 3b) and the structured label encoding.

``drug`` is the parent of ``weed``, ``pills`` and ``syrup``. Every training sample is one
of a small number of *kinds* (where it came from and what it is labelled); the encoding
turns a kind into per-task targets and loss weights:

==========================  ===============  =======  =======  =======
kind                        drug             weed     pills    syrup
==========================  ===============  =======  =======  =======
Instagram post, drug = 1    1, w 1           masked   masked   masked
Instagram post, drug = 0    0, w 1           masked   masked   masked
web image of weed           1, w = relation  1, w 1   masked   masked
web image of pills          1, w = relation  masked   1, w 1   masked
web image of syrup          1, w = relation  masked   masked   1, w 1
negative (random Instagram) 0, w 1           0, w 1   0, w 1   0, w 1
==========================  ===============  =======  =======  =======

"masked" means weight 0: the paper masks the losses of nodes that are not connected to
the node the sample belongs to. The parent target of a web image comes from the tree
("task-relation encoding") and is noisier, hence its lower weight (0.5 in the paper).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TASKS: tuple[str, ...] = ("drug", "weed", "pills", "syrup")
PARENT: dict[str, str | None] = {"drug": None, "weed": "drug", "pills": "drug", "syrup": "drug"}

# Sample kinds, as stored in datasets and batches (int32).
INSTAGRAM_NEGATIVE = 0
INSTAGRAM_POSITIVE = 1
WEB_WEED = 2
WEB_PILLS = 3
WEB_SYRUP = 4
NEGATIVE = 5
KIND_NAMES: tuple[str, ...] = (
    "instagram_negative",
    "instagram_positive",
    "web_weed",
    "web_pills",
    "web_syrup",
    "negative",
)
WEB_CLASS_TO_KIND: dict[str, int] = {
    "weed": WEB_WEED,
    "pills": WEB_PILLS,
    "syrup": WEB_SYRUP,
    "negative": NEGATIVE,
}

_TARGETS = np.array(
    [
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [1, 0, 0, 1],
        [0, 0, 0, 0],
    ],
    np.float32,
)
# Weights that do not depend on the relation weight ...
_FIXED_WEIGHTS = np.array(
    [
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
        [1, 1, 1, 1],
    ],
    np.float32,
)
# ... and where the relation weight goes (the parent node of a web image).
_RELATION_SLOTS = np.array(
    [
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    np.float32,
)


def instagram_kind(drug: int) -> int:
    """The kind of an Instagram post labelled ``drug`` (0 or 1)."""
    if drug not in (0, 1):
        raise ValueError(f"an Instagram post's drug label must be 0 or 1, got {drug!r}")
    return INSTAGRAM_POSITIVE if drug else INSTAGRAM_NEGATIVE


def web_kind(cls: str) -> int:
    """The kind of a web image of class ``cls`` (weed, pills, syrup or negative)."""
    try:
        return WEB_CLASS_TO_KIND[cls]
    except KeyError:
        raise ValueError(
            f"unknown web image class {cls!r}; expected one of {sorted(WEB_CLASS_TO_KIND)}"
        ) from None


def encode_labels(kinds, relation_weight: float = 0.5):
    """Structured targets and loss weights for samples of the given kinds.

    Args:
      kinds: integer array of shape ``(...,)`` with values in ``range(len(KIND_NAMES))``.
        A ``jax.Array`` (also inside ``jit``) gives jax arrays, anything else numpy.
      relation_weight: loss weight of the parent target implied by the task tree.
        A Python float or a traced scalar (so it can be swept under ``vmap``).

    Returns:
      ``(targets, weights)``, both float32 of shape ``kinds.shape + (4,)``.
    """
    xp = jnp if isinstance(kinds, jax.Array) else np
    kinds = xp.asarray(kinds)
    if xp is np and kinds.size and (kinds.min() < 0 or kinds.max() >= len(KIND_NAMES)):
        raise ValueError(f"sample kinds must lie in [0, {len(KIND_NAMES)}), got {kinds}")
    targets = xp.asarray(_TARGETS)[kinds]
    weights = xp.asarray(_FIXED_WEIGHTS)[kinds] + relation_weight * xp.asarray(_RELATION_SLOTS)[kinds]
    return targets, weights.astype(xp.float32)
