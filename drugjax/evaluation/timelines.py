"""Timeline posts scored as the paper scores them: by the late-fusion classifier, picture
and text, for the account features (P, H1-H4, E's drug-related posts).

The backbone features of every timeline picture are extracted with Table 1's feature
extractor (same backbone, weights, size, pooled blocks and mirror averaging) and cached
beside the posts' features; the saved models of Table 1 (``models/``: the MT MLP heads,
the Combined text model and the fusion weight) then score each post. A post without a
usable picture is scored by its text alone, one without text by its picture alone: late
fusion's rule, counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.evaluation.config import EvaluateConfig
from drugjax.evaluation.protocol import PostModels, feature_backbone
from drugjax.fusion import fuse
from drugjax.runtime.digest import digest_bytes
from drugjax.training import features as features_lib
from drugjax.training import inputs
from drugjax.training.provenance import BackboneCheckpoint

log = logging.getLogger(__name__)


class Pictures:
    """Posts' pictures as a loader source (the image bytes; kind and fold 0, which feature
    extraction does not use), with what identifies them in the feature cache."""

    def __init__(self, ids: Sequence[str], images: Sequence[bytes], identity: str):
        self.ids, self._images, self.identity = list(ids), list(images), identity

    @classmethod
    def of_timelines(cls, accounts_source: Any) -> "Pictures":
        """Every timeline picture of a built accounts source (as the build stored it)."""
        ids, images = [], []
        for i in range(len(accounts_source)):
            for post in accounts_source[i]["timeline"]:
                ids.append(str(post["id"]))
                images.append(post["image"])
        return cls(ids, images, inputs.source_identity(accounts_source))

    @classmethod
    def of_files(cls, root: Path, posts: Sequence[Mapping[str, Any]]) -> "Pictures":
        """The picture files of ``posts`` under ``root``; a post whose file is missing or
        does not decode as an image has no picture (it is scored by its text)."""
        ids, images = [], []
        for post in posts:
            path = root / post["image"] if post.get("image") else None
            if path is not None and path.is_file():
                data = path.read_bytes()
                if _is_image(data):
                    ids.append(str(post["id"]))
                    images.append(data)
        return cls(ids, images, digest_bytes(*(i.encode() for i in ids), *images))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"id": self.ids[index], "image": self._images[index], "kind": 0, "fold": 0}


def _is_image(data: bytes) -> bool:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:  # noqa: BLE001 - any decoder error means: no usable picture
        return False
    return True


def picture_features(cfg: EvaluateConfig, pictures: Pictures,
                     checkpoint: BackboneCheckpoint | None = None) -> dict[str, np.ndarray]:
    """Post id -> backbone features of its picture, with Table 1's feature extractor
    (cached under ``<data_dir>/features/`` like the posts' features)."""
    tcfg, backbone, variables, weights_id = feature_backbone(cfg, checkpoint)
    if weights_id is None:
        from drugjax.training.build import resolve_weights

        weights_id = resolve_weights(tcfg).sha256
    key = features_lib.cache_key(
        what="pictures", backbone=tcfg.model.backbone.name, weights=weights_id,
        transform=getattr(backbone, "transform_input", None), pool_layers=list(tcfg.model.backbone.pool_layers),
        flip_average=tcfg.model.backbone.flip_average, image_size=tcfg.data.image_size, data=pictures.identity)
    path = inputs.feature_cache_dir(tcfg) / f"pictures-{key}.npz"
    cached = features_lib.load_features(path, key)
    if cached is None:
        log.info("extracting backbone features of %d pictures (once; cached in %s)", len(pictures), path)
        cached = features_lib.extract_features(
            backbone, variables(), {"pictures": pictures}, names=["pictures"], image_size=tcfg.data.image_size,
            batch_size=tcfg.data.eval_batch_size, workers=tcfg.data.workers,
            flip_average=tcfg.model.backbone.flip_average)
        features_lib.save_features(path, cached, key)
    found = cached["pictures"]
    return {pictures.ids[int(i)]: row for i, row in zip(found["index"], found["features"])}


def timeline_features(cfg: EvaluateConfig, accounts_source: Any,
                      checkpoint: BackboneCheckpoint | None = None) -> dict[str, np.ndarray]:
    """Post id -> backbone features of every timeline post's picture."""
    return picture_features(cfg, Pictures.of_timelines(accounts_source), checkpoint)


def has_text(post: Mapping[str, Any]) -> bool:
    return bool((post.get("caption") or "").strip() or post.get("tags"))


def fused_probabilities(models: PostModels, features: Mapping[str, np.ndarray],
                        posts: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    """Post id -> late-fusion probability of each post, in one pass (the heads run once),
    and how many were scored by fusion, by text alone (no usable picture) and by picture
    alone (no text): the rule of Table 1's late fusion."""
    with_image = np.array([str(p.get("id")) in features for p in posts], bool)
    with_text = np.array([has_text(p) for p in posts], bool)
    counts = {"fusion": int((with_image & with_text).sum()), "text_only": int((~with_image).sum()),
              "image_only": int((with_image & ~with_text).sum())}
    if not posts:
        return {}, counts
    image = np.full(len(posts), np.nan)
    if with_image.any():
        rows = np.stack([features[str(p.get("id"))] for p, keep in zip(posts, with_image) if keep])
        image[with_image] = models.image_probability(rows)
    text = np.where(with_image & ~with_text, np.nan, models.text_probability(posts))
    probability = fuse(image, text, models.fusion["weight"]).probability
    return {str(p.get("id")): float(q) for p, q in zip(posts, probability)}, counts
