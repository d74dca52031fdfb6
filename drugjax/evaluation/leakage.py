"""No backbone that saw a post scores it: a train.py checkpoint as evaluate.py's backbone.

``model.backbone.weights=runs/NAME`` (a train.py run directory: its latest checkpoint;
or ``runs/NAME/checkpoints/STEP``) makes a fine-tuned backbone the feature extractor of
the image rows. Before any feature is extracted, :func:`check_backbone` compares the
posts the run trained on (its ``training_posts.json``, written by train.py; see
:mod:`drugjax.training.provenance`) with the posts of every fold this evaluation scores,
and refuses the checkpoint (:class:`LeakageError`, exit status 2) when any is among them,
or when the run has no record or an incomplete one. Table 1 scores every labelled post,
so a run trained on any post of the same world is refused; one trained on web images
only (``data.sources=[web]``) or on another world is accepted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drugjax.evaluation.config import EvaluateConfig, is_run_directory
from drugjax.training import provenance
from drugjax.training.config import ConfigError

FIX = ("Use a backbone that never trained on these posts: train it on other posts (another world, e.g. "
       "data.seed=1, or web images only, data.sources=[web]), or give weights not trained on them "
       "(a converted .npz, or none for a random initialisation)")


class LeakageError(ConfigError):
    """The backbone checkpoint may have seen posts this evaluation scores."""


def check_backbone(cfg: EvaluateConfig, posts_source: Any, ids: list[str],
                   folds: np.ndarray) -> provenance.BackboneCheckpoint | None:
    """The checkpoint ``model.backbone.weights`` names, once its record shows that it
    trained on none of ``ids`` (the scored posts; ``folds[i]``: the fold of ``ids[i]``);
    None when the weights are a file or unset. Raises :class:`LeakageError`."""
    weights = cfg.model.backbone.weights
    if not is_run_directory(weights):
        return None
    checkpoint = provenance.backbone_checkpoint(weights)
    if checkpoint.backbone_name != cfg.model.backbone.name:
        raise ConfigError(f"model.backbone.weights={weights}: a {checkpoint.backbone_name} backbone, but "
                          f"model.backbone.name={cfg.model.backbone.name}; set model.backbone.name="
                          f"{checkpoint.backbone_name}")
    where = f"model.backbone.weights={weights}"
    record = provenance.read_record(checkpoint.run)
    if record is None:
        raise LeakageError(
            f"{where}: {checkpoint.run} has no {provenance.RECORD}, so which posts it trained on is unknown and "
            f"its features may have seen the posts Table 1 tests; refused. Train the run with this train.py, which "
            f"writes that record before its first step (and for init_from= runs, train their ancestors with it "
            f"too). {FIX}")
    if not record.get("complete", False):
        raise LeakageError(
            f"{where}: the training data of part of its history is unknown "
            f"({'; '.join(record.get('unrecorded', []))}), so its features may have seen the posts Table 1 tests; "
            f"refused. {FIX}")
    world = provenance.world_of(posts_source)
    seen = provenance.overlap(record, world, ids)
    if seen:
        hit = np.fromiter((i in seen for i in ids), bool, len(ids))
        hit_folds = sorted({int(f) for f in folds[hit]})
        k = int(folds.max()) + 1 if len(folds) else 0
        raise LeakageError(
            f"{where}: {checkpoint.run} trained on {len(seen)} of the {len(ids)} posts this evaluation scores "
            f"({describe(world)}), in {len(hit_folds)} of its {k} folds ({', '.join(map(str, hit_folds))}), so "
            f"its features would have seen the posts they are tested on; refused. Table 1 scores every labelled "
            f"post, so no data.split or folds setting avoids this: any run trained on this world's posts "
            f"overlaps. {FIX}")
    return checkpoint


def describe(world: dict) -> str:
    return provenance.describe_world(world)
