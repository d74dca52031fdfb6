"""Precomputed backbone features and a resumable loader over them (the paper's set-up).

The paper extracts GoogLeNet features once and trains the multitask trunk on them. Here
the backbone runs once over every usable record (no augmentation), the 1024-d features
are cached under ``<data_dir>/features/`` (shared by every run with the same backbone
weights and data), and training steps only run the trunk and heads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from drugjax.runtime import atomic, xla_cpu
from drugjax.data import pipeline
from drugjax.data.resumable import Resumable
from drugjax.runtime.digest import digest_json
from drugjax.runtime.progress import Progress

log = logging.getLogger(__name__)


def extract_features(
    backbone: Any,
    variables: dict,
    sources: Mapping[str, Any],
    *,
    names: Sequence[str],
    image_size: int,
    batch_size: int = 64,
    workers: int = 0,
    flip_average: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Backbone features of every usable record (with an image and a label) of each source;
    with ``flip_average``, the mean of the features of the image and of its mirror image.

    Returns ``{name: {"features": (n, D) float32, "kind": (n,) int32, "fold": (n,) int32,
    "index": (n,) int64}}`` in record order.
    """
    def features(v, x):
        f = backbone.apply(v, x, train=False).astype(jnp.float32)
        if flip_average:
            f = (f + backbone.apply(v, x[:, :, ::-1], train=False).astype(jnp.float32)) / 2
        return f

    forward = xla_cpu.jit(features)
    out = {}
    total = sum(len(pipeline.select(sources[name], None)) for name in names)
    bar = Progress(total, f"backbone features of {', '.join(names)}", unit="img")
    for name in names:
        loader = pipeline.eval_loader(
            sources, image_size=image_size, per_device_batch=batch_size, num_devices=1, names=[name], workers=workers
        )
        feats, kinds, index = [], [], []
        for batch in loader:
            valid = batch["valid"].reshape(-1)
            x = batch["image"].reshape((-1,) + batch["image"].shape[2:])
            f = np.asarray(forward(variables, x))
            feats.append(f[valid])
            kinds.append(batch["kind"].reshape(-1)[valid])
            index.append(batch["index"].reshape(-1)[valid])
            bar.update(int(valid.sum()))
        index = np.concatenate(index).astype(np.int64)
        folds = pipeline.scan(sources[name]).fold[index]
        out[name] = {
            "features": np.concatenate(feats).astype(np.float32),
            "kind": np.concatenate(kinds).astype(np.int32),
            "fold": np.asarray(folds, np.int32),
            "index": index,
        }
    bar.close()
    return out


def cache_key(**parts: Any) -> str:
    """A short digest of what determines the features (weights, data, image size, ...)."""
    return digest_json(parts)


def save_features(path: Path, feats: dict[str, dict[str, np.ndarray]], key: str) -> None:
    """Write the cache entry atomically: a kill or a full disk never leaves half of one
    (a full disk is one :class:`drugjax.errors.DiskFullError` naming ``path``)."""
    arrays = {f"{name}/{k}": v for name, d in feats.items() for k, v in d.items()}
    with atomic.replacing(path) as f:
        np.savez(f, __key__=np.array(key), **arrays)


def load_features(path: Path, key: str) -> dict[str, dict[str, np.ndarray]] | None:
    """The cached features if ``path`` holds ones made with ``key``, else None."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            if str(z["__key__"]) != key:
                return None
            out: dict[str, dict[str, np.ndarray]] = {}
            for k in z.files:
                if k == "__key__":
                    continue
                name, field = k.split("/", 1)
                out.setdefault(name, {})[field] = z[k]
            return out
    except (OSError, ValueError, KeyError) as e:
        log.warning("the feature cache %s cannot be read (%s: %s); extracting the features again",
                    path, type(e).__name__, e)
        return None


class ShuffledOrder:
    """Which rows batch ``n`` of an endless shuffled pass over ``n_rows`` rows holds.

    Epoch ``e`` is the permutation drawn from ``(seed, e)``; the last incomplete batch of
    an epoch is dropped. Shared by :class:`FeatureLoader` and the sweep engine, so a
    configuration trained in a sweep sees exactly the batches it would see alone.
    """

    def __init__(self, n_rows: int, global_batch: int, seed: int):
        self.n_rows, self.global_batch, self.seed = n_rows, global_batch, seed
        self.steps_per_epoch = n_rows // global_batch
        self._epoch, self._permutation = -1, None

    def rows(self, position: int) -> np.ndarray:
        epoch, i = divmod(position, self.steps_per_epoch)
        if epoch != self._epoch:
            self._permutation = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
            self._epoch = epoch
        return self._permutation[i * self.global_batch : (i + 1) * self.global_batch]


class FeatureLoader(Resumable):
    """Infinite shuffled batches of precomputed features, shaped ``(D, B, ...)``.

    Epoch ``e`` is the permutation drawn from ``(seed, e)``; the last incomplete batch of
    an epoch is dropped. The state is the position of the next batch, so
    :meth:`set_state` resumes on exactly the next batch.

    Several hosts (``process_count > 1``, the same ``seed`` everywhere): the global batch
    is ``per_device_batch * num_devices * process_count`` and host ``process_index`` gets
    its contiguous rows of it (``drugjax.data.pipeline.host_rows``); the hosts' batches,
    concatenated in process order, are the one-process batch.
    """

    state_name = "feature loader"

    def __init__(self, features: np.ndarray, kinds: np.ndarray, *, per_device_batch: int, num_devices: int, seed: int,
                 process_index: int = 0, process_count: int = 1):
        features = np.asarray(features, np.float32)
        kinds = np.asarray(kinds, np.int32)
        global_batch = per_device_batch * num_devices * process_count
        self._rows = pipeline.host_rows(global_batch, process_index, process_count)
        if len(features) < global_batch:
            raise ValueError(
                f"{len(features)} training examples are fewer than one global batch of {global_batch}; "
                "lower data.batch_size"
            )
        self.features, self.kinds = features, kinds
        self.per_device_batch, self.num_devices, self.seed = per_device_batch, num_devices, seed
        self._order = ShuffledOrder(len(features), global_batch, seed)
        self.steps_per_epoch = self._order.steps_per_epoch
        self._position = 0
        self._config = {"n": int(len(features)), "seed": int(seed), "global_batch": int(global_batch)}

    def __iter__(self) -> "FeatureLoader":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        idx = self._order.rows(self._position)[self._rows]
        self._position += 1
        d, b = self.num_devices, self.per_device_batch
        return {
            "x": self.features[idx].reshape(d, b, -1),
            "kind": self.kinds[idx].reshape(d, b),
            "valid": np.ones((d, b), bool),
        }


def eval_batches(
    features: np.ndarray, kinds: np.ndarray, *, per_device_batch: int, num_devices: int
) -> list[dict[str, np.ndarray]]:
    """One ordered pass over features, the last batch padded (``valid`` False there)."""
    gb = per_device_batch * num_devices
    n = len(features)
    out = []
    for start in range(0, n, gb):
        x = features[start : start + gb]
        k = kinds[start : start + gb]
        valid = np.ones(gb, bool)
        pad = gb - len(x)
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
            k = np.concatenate([k, np.zeros(pad, k.dtype)])
            valid[-pad:] = False
        d, b = num_devices, per_device_batch
        out.append({"x": x.reshape((d, b) + x.shape[1:]), "kind": k.reshape(d, b), "valid": valid.reshape(d, b)})
    return out
