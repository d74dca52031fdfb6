"""Where the training inputs come from: the datasets, and the batches the steps eat.

Three kinds of input, one interface (:class:`Inputs`):

* end to end (``model.kind=end_to_end``): images through the grain pipeline, augmented;
* precomputed features (``model.kind=heads``, the paper's set-up): the backbone runs once
  over every usable image, the 1024-d features are cached under
  ``<data_dir>/features/`` (shared by every run with the same backbone weights and data)
  and batches are drawn from them;
* the pretext set (``data.kind=pretext``, ``experiment=pretrain``): everyday objects to
  pre-train the backbone on (:mod:`drugjax.synthetic.pretext`), ``kind`` holding the class.

Every batch has ``x`` (images or features), ``kind`` and ``valid``, shaped
``(devices, per_device_batch, ...)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from drugjax.data import augment as aug
from drugjax.data import pipeline
from drugjax.data.resumable import Resumable
from drugjax.runtime.digest import digest_bytes, digest_json
from drugjax.training import features as features_lib
from drugjax.training.features import ShuffledOrder
from drugjax.training.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Inputs:
    """The training batches (an endless iterator with ``get_state``/``set_state``), the
    validation batches (a fresh pass per call), an example input to initialise the model
    with, and the unit of the throughput (``img`` or ``samples``)."""

    train: Any
    val_batches: Callable[[], Iterable[dict]]
    sample: jax.Array
    units: str


# --------------------------------------------------------------------------- sources
def load_sources(cfg: TrainConfig) -> dict:
    """Build (once; cached) and open the datasets ``cfg.data`` names."""
    from drugjax.data.builders import prepare

    if not 0 <= cfg.data.max_rejected <= 1:
        raise ConfigError(f"data.max_rejected must be a share between 0 and 1, got {cfg.data.max_rejected}")
    return prepare(cfg.data.root, preset=cfg.data.preset, seed=cfg.data.seed, image_size=cfg.data.image_size,
                   data_dir=cfg.data.data_dir, max_rejected=cfg.data.max_rejected)


def check_sources(cfg: TrainConfig, sources: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Check that the sources serve ``cfg``; returns (and logs) the records each source
    has and how many the loaders leave out (no image, no label)."""
    data = cfg.data
    missing = [s for s in data.sources if s not in sources]
    if missing or not data.sources:
        raise ConfigError(f"data.sources={list(data.sources)}: {missing} not among the built sources {sorted(sources)}")
    if "posts" not in sources:
        raise ConfigError("validation needs the 'posts' source (Instagram posts with drug labels)")
    counts = usable_records(sources, sorted(set(data.sources) | {"posts"}))
    if counts["posts"]["unlabelled"] == counts["posts"]["records"]:
        # A freshly imported ROOT: every post still has drug null.
        raise ConfigError(f"none of the {counts['posts']['records']} posts has a drug label (0 or 1) yet; label "
                          f"them first: python -m drugjax.data export-unlabelled ROOT --posts todo.csv, fill its "
                          f"drug column, then python -m drugjax.data label ROOT --posts todo.csv")
    return counts


def usable_records(sources: Mapping[str, Any], names: list[str]) -> dict[str, dict[str, int]]:
    """Per source: records, and how many the loaders leave out (no image, no label), logged."""
    counts = {}
    for name in names:
        columns = pipeline.scan(sources[name])
        no_image, unlabelled = int((~columns.has_image).sum()), int((columns.kind < 0).sum())
        used = int((columns.has_image & (columns.kind >= 0)).sum())
        counts[name] = {"records": len(columns.kind), "used": used, "without_image": no_image, "unlabelled": unlabelled}
        if used < len(columns.kind):
            log.info("%s: %d of %d records are used; left out: %d without an image, %d unlabelled",
                     name, used, len(columns.kind), no_image, unlabelled)
    return counts


class _TrainFoldSource:
    """A source whose records all count as being in ``fold`` (web images are never
    validated on, so all of them train, whatever fold their id hashes to)."""

    def __init__(self, source: Any, fold: int):
        self._source = source
        columns = pipeline.scan(source)
        self.columns = dataclasses.replace(columns, fold=np.full_like(columns.fold, fold))

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i):
        return self._source[i]


def _mixture(cfg: TrainConfig) -> dict[str, float] | None:
    """``data.mixture`` as the pipeline's {source: weight}, checked against ``data.sources``."""
    data = cfg.data
    if not data.mixture:
        return None
    if len(data.mixture) != len(data.sources):
        raise ConfigError(
            f"data.mixture={list(data.mixture)} needs one weight per entry of "
            f"data.sources={list(data.sources)}, e.g. data.mixture=[0.5,0.5]"
        )
    return dict(zip(data.sources, data.mixture))


@contextlib.contextmanager
def _data_errors():
    """The loaders' ValueErrors (too little data for a batch, a bad mixture, ...) as one
    ConfigError line, which train.py prints without a traceback."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None


def _train_folds(cfg: TrainConfig) -> list[int]:
    return [f for f in range(cfg.data.num_folds) if f != cfg.data.val_fold]


# --------------------------------------------------------------------------- images
def as_step_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An image pipeline batch (``image``) in the steps' terms (``x``)."""
    return {"x": batch["image"], "kind": batch["kind"], "valid": batch["valid"]}


class _ImageBatches:
    """The image pipeline's training batches in the steps' terms; resumable like it."""

    def __init__(self, loader: pipeline.TrainLoader):
        self.loader = loader

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        return as_step_batch(next(self.loader))

    def get_state(self) -> dict:
        return self.loader.get_state()

    def set_state(self, state: Mapping) -> None:
        self.loader.set_state(state)

    def close(self) -> None:
        self.loader.close()


def _per_device(batch_size: int, num_devices: int) -> int:
    # data.batch_size is global: over this host's devices and every host.
    return batch_size // (num_devices * jax.process_count())


def image_inputs(cfg: TrainConfig, sources: Mapping[str, Any], *, num_devices: int) -> Inputs:
    """End-to-end training: augmented images of ``data.sources``, validation posts of
    ``data.val_fold``. On several hosts every host reads its own rows of each global
    batch (same seed everywhere) and evaluates the whole validation fold."""
    data = cfg.data
    train_sources = {n: sources[n] for n in data.sources}
    if "web" in train_sources:
        train_sources["web"] = _TrainFoldSource(train_sources["web"], _train_folds(cfg)[0])
    with _data_errors():
        train = pipeline.train_loader(
            train_sources, image_size=data.image_size, per_device_batch=_per_device(data.batch_size, num_devices),
            num_devices=num_devices, seed=cfg.seed, folds=_train_folds(cfg), mixture=_mixture(cfg),
            augment=data.augment, workers=data.workers,
            process_index=jax.process_index(), process_count=jax.process_count(),
        )
        val = pipeline.eval_loader(
            sources, image_size=data.image_size, per_device_batch=data.eval_batch_size // num_devices,
            num_devices=num_devices, folds=[data.val_fold], names=["posts"], workers=data.workers,
        )
    sample = jnp.zeros((1, data.image_size, data.image_size, 3), jnp.float32)
    return Inputs(_ImageBatches(train), lambda: map(as_step_batch, val), sample, "img")


# --------------------------------------------------------------------------- features
def source_identity(source: Any) -> str:
    """What identifies a source's content: the build metadata of a built dataset (its
    version, preset/seed or ROOT content fingerprint, per-record kinds and folds), else
    the kinds, folds and image bytes of an in-memory one (hashing them costs far less
    than extracting features, and other images under the same labels are other data)."""
    metadata = getattr(source, "metadata", None)
    if metadata:
        return digest_json(metadata)
    columns = pipeline.scan(source)
    images = (_image_bytes(source[i]["image"]) for i in range(len(source)))
    return digest_bytes(str(len(source)).encode(), columns.kind.tobytes(), columns.fold.tobytes(),
                        columns.has_image.tobytes(), *images)


def _image_bytes(image: Any) -> bytes:
    if image is None:
        return b""
    if isinstance(image, np.ndarray):
        return f"{image.dtype}{image.shape}".encode() + image.tobytes()
    return bytes(image)


def feature_cache_dir(cfg: TrainConfig) -> Path:
    if cfg.data.data_dir:
        base = Path(cfg.data.data_dir).expanduser()
    else:
        from drugjax.data.builders import default_data_dir

        base = Path(default_data_dir())
    path = base / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_features(cfg: TrainConfig, sources: Mapping[str, Any], backbone: Any,
                    backbone_variables: Callable[[], dict], *, is_main: bool, weights_id: str | None = None) -> dict:
    """The backbone's features of every usable record of the posts and ``data.sources``,
    from the cache or extracted once (``backbone_variables()`` is only called then).
    ``weights_id`` identifies weights that are not ``model.backbone.weights``'s file (a
    train.py checkpoint as evaluate.py's backbone) in the cache key."""
    data = cfg.data
    names = sorted(set(data.sources) | {"posts"})
    if weights_id is None:
        from drugjax.training.build import resolve_weights

        weights_id = resolve_weights(cfg).sha256
    key = features_lib.cache_key(
        backbone=cfg.model.backbone.name, weights=weights_id, transform=getattr(backbone, "transform_input", None),
        pool_layers=list(cfg.model.backbone.pool_layers), flip_average=cfg.model.backbone.flip_average,
        # The seed draws a random backbone; given weights, every seed shares one set of features.
        seed=cfg.seed if weights_id is None else None, image_size=data.image_size,
        data={n: source_identity(sources[n]) for n in names},
    )
    path = feature_cache_dir(cfg) / f"features-{key}.npz"
    features = features_lib.load_features(path, key)
    if features is None:
        log.info("extracting backbone features of %s (once; cached in %s)", names, path)
        features = features_lib.extract_features(
            backbone, backbone_variables(), sources, names=names, image_size=data.image_size,
            batch_size=data.eval_batch_size, workers=data.workers, flip_average=cfg.model.backbone.flip_average,
        )
        if is_main:
            features_lib.save_features(path, features, key)
    return features


def feature_inputs(cfg: TrainConfig, features: Mapping[str, dict], *, num_devices: int) -> Inputs:
    """Heads on precomputed features: every training fold's posts and all of the other
    sources' records; validation posts of ``data.val_fold``."""
    data = cfg.data
    train_x, train_kind = [], []
    for name in data.sources:
        keep = (np.isin(features[name]["fold"], _train_folds(cfg)) if name == "posts"
                else np.ones(len(features[name]["kind"]), bool))
        train_x.append(features[name]["features"][keep])
        train_kind.append(features[name]["kind"][keep])
    with _data_errors():
        train = features_lib.FeatureLoader(
            np.concatenate(train_x), np.concatenate(train_kind), per_device_batch=_per_device(data.batch_size, num_devices),
            num_devices=num_devices, seed=cfg.seed,
            process_index=jax.process_index(), process_count=jax.process_count(),
        )
    val_mask = features["posts"]["fold"] == data.val_fold
    val = features_lib.eval_batches(
        features["posts"]["features"][val_mask], features["posts"]["kind"][val_mask],
        per_device_batch=data.eval_batch_size // num_devices, num_devices=num_devices,
    )
    if data.mixture:
        log.warning("data.mixture applies to end-to-end training; on features every training "
                    "example is drawn equally often")
    sample = jnp.zeros((1, features["posts"]["features"].shape[1]), jnp.float32)
    return Inputs(train, lambda: iter(val), sample, "samples")


# --------------------------------------------------------------------------- pretext
class PretextLoader(Resumable):
    """Endless shuffled batches of the pretext images (``x`` normalised like the image
    pipeline's, ``kind`` = class label), each image flipped left-right with probability
    1/2 when ``augment``; batch ``n`` is a pure function of the seed and ``n``."""

    state_name = "pretext loader"

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, per_device_batch: int, num_devices: int, seed: int,
                 augment: bool, process_index: int = 0, process_count: int = 1):
        global_batch = per_device_batch * num_devices * process_count
        if len(images) < global_batch:
            raise ValueError(f"{len(images)} pretext images are fewer than one global batch of {global_batch}; "
                             "lower data.batch_size or raise data.pretext_per_class")
        self.images, self.labels, self.augment, self.seed = images, np.asarray(labels, np.int32), augment, seed
        self.per_device_batch, self.num_devices = per_device_batch, num_devices
        self._rows = pipeline.host_rows(global_batch, process_index, process_count)
        self._order = ShuffledOrder(len(images), global_batch, seed)
        self._position = 0
        self._config = {"n": int(len(images)), "seed": int(seed), "global_batch": int(global_batch),
                        "augment": bool(augment)}

    def __iter__(self) -> PretextLoader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        global_rows = self._order.rows(self._position)
        flips = np.random.default_rng([self.seed, 1, self._position]).random(len(global_rows)) < 0.5
        rows, flips = global_rows[self._rows], flips[self._rows]
        self._position += 1
        images = self.images[rows]
        if self.augment:
            images[flips] = images[flips, :, ::-1]
        d, b = self.num_devices, self.per_device_batch
        return {"x": aug.normalize(images).reshape((d, b) + images.shape[1:]),
                "kind": self.labels[rows].reshape(d, b), "valid": np.ones((d, b), bool)}


def pretext_inputs(cfg: TrainConfig, *, num_devices: int) -> tuple[Inputs, dict[str, dict[str, int]]]:
    """The pretext set (drugjax.synthetic.pretext), drawn once and cached under
    ``<data_dir>/pretext/``: its train split trains, its val split validates. Also
    returns the record counts, as :func:`check_sources` does for the world's sources."""
    from drugjax.synthetic import pretext

    data = cfg.data
    cache = feature_cache_dir(cfg).parent / "pretext"
    train_images, train_labels = pretext.load("train", per_class=data.pretext_per_class, seed=data.seed,
                                              size=data.image_size, cache_dir=cache)
    val_images, val_labels = pretext.load("val", per_class=data.pretext_val_per_class, seed=data.seed,
                                          size=data.image_size, cache_dir=cache)
    with _data_errors():
        train = PretextLoader(train_images, train_labels, per_device_batch=_per_device(data.batch_size, num_devices),
                              num_devices=num_devices, seed=cfg.seed, augment=data.augment,
                              process_index=jax.process_index(), process_count=jax.process_count())
    val = features_lib.eval_batches(aug.normalize(val_images), val_labels,
                                    per_device_batch=data.eval_batch_size // num_devices, num_devices=num_devices)
    sample = jnp.zeros((1, data.image_size, data.image_size, 3), jnp.float32)
    counts = {split: {"records": len(labels), "used": len(labels), "classes": len(pretext.CLASS_NAMES)}
              for split, labels in (("pretext_train", train_labels), ("pretext_val", val_labels))}
    log.info("pretext: %d training and %d validation images of %d classes at %d px",
             len(train_labels), len(val_labels), len(pretext.CLASS_NAMES), data.image_size)
    return Inputs(train, lambda: iter(val), sample, "img"), counts
