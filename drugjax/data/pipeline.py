"""The grain input pipeline: data sources -> batches shaped for data parallelism.

A *source* is any random-access collection (``len`` and ``[i]``) of dict records with at
least ``image`` (encoded JPEG/PNG bytes, or a uint8 (H, W, 3) array; empty bytes or None
when the record has no image), ``kind`` (int, the sample kinds of :mod:`drugjax.tasks`;
negative when the record has no label) and ``fold`` (int, from
:func:`drugjax.data.folds.fold_of`). The sources that :func:`drugjax.data.builders.prepare`
returns qualify, and so does a plain list of dicts.

Records without an image or without a label, and records outside the requested folds, are
left out of the loaders (the loaders report how many they kept: ``num_examples``).

Every batch is a dict of numpy arrays, shaped for ``jax.pmap`` / a ``data`` mesh:

=========  ========  ==================================================================
key        dtype     shape / meaning
=========  ========  ==================================================================
image      float32   (devices, per_device_batch, S, S, 3), ImageNet mean/std normalised
kind       int32     (devices, per_device_batch)
valid      bool      (devices, per_device_batch), False on padding (eval only)
index      int64     (devices, per_device_batch), record index in its source, -1 on padding
=========  ========  ==================================================================

The whole pipeline is an index-addressed grain ``MapDataset``: batch ``i`` is a pure
function of (sources, seed, i), built inside whichever worker process computes it. That
gives the properties training relies on: the same seed gives the same batches whatever
the number of workers, epochs are reshuffled deterministically from seed and epoch, and
the iterator state is just a position, so a restored state resumes on exactly the next
batch.

Several hosts (``process_count > 1``): every host builds the same global sequence (same
seed) and reads only its own contiguous rows of each global batch — host ``p`` of ``P``
takes rows ``[p * L, (p + 1) * L)`` of every global batch of ``P * L`` elements, ``L`` =
``num_devices * per_device_batch`` its local devices' share. The rows are chosen before
any image is decoded, so a host decodes only its own. The hosts' batches, concatenated in
process order, are the one-process batch, which is the order in which a multi-host
``pmap`` lays out devices (process 0's local devices first).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grain
from absl import flags as absl_flags
import numpy as np

from drugjax.data import augment as aug
from drugjax.data.resumable import Resumable
from drugjax.data.schema import Columns
from drugjax.runtime.textsafe import escape_controls
from drugjax.tasks import KIND_NAMES

#: Sources that hold images the loaders can use, in the order eval_loader reads them.
IMAGE_SOURCES: tuple[str, ...] = ("posts", "web")
_SCAN_CHUNK = 256


def _has_image(image) -> bool:
    if image is None:
        return False
    if isinstance(image, np.ndarray):
        return image.size > 0
    return len(image) > 0


def scan(source) -> Columns:
    """Read ``kind``, ``fold`` and image presence of every record of ``source``.

    A source may provide them precomputed as a ``columns`` attribute (the builders' sources
    do, from the build's metadata); otherwise every record is read once.
    """
    columns = getattr(source, "columns", None)
    if columns is not None:
        return columns
    n = len(source)
    kind = np.empty(n, np.int32)
    fold = np.empty(n, np.int32)
    has_image = np.empty(n, bool)
    getitems = getattr(source, "__getitems__", None)
    for start in range(0, n, _SCAN_CHUNK):
        idx = list(range(start, min(n, start + _SCAN_CHUNK)))
        records = getitems(idx) if getitems is not None else [source[i] for i in idx]
        for i, r in zip(idx, records):
            try:
                kind[i] = int(r["kind"])
                fold[i] = int(r["fold"])
                has_image[i] = _has_image(r["image"])
            except KeyError as e:
                raise ValueError(
                    f"record {i} of the source has no {e.args[0]!r} field; the loaders need "
                    "'image', 'kind' and 'fold' (see drugjax.data.pipeline)"
                ) from None
    return Columns(kind, fold, has_image)


def select(source, folds: Sequence[int] | None) -> np.ndarray:
    """Indices (int64, ascending) of the records the loaders use: with an image, a label
    (kind >= 0) and a fold in ``folds`` (all folds when None)."""
    c = scan(source)
    keep = c.has_image & (c.kind >= 0)
    if folds is not None:
        keep &= np.isin(c.fold, np.asarray(list(folds), np.int32))
    return np.flatnonzero(keep).astype(np.int64)


class _Selection:
    """A random-access view of some records of a source; yields (index, record)."""

    def __init__(self, name: str, source, indices: np.ndarray):
        self.name = name
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        return j, self.source[j]


def _element(name: str, index: int, record: Mapping[str, Any], image: np.ndarray) -> dict:
    kind = int(record["kind"])
    if not 0 <= kind < len(KIND_NAMES):
        raise ValueError(f"{name} record {index}: kind {kind} is not one of 0..{len(KIND_NAMES) - 1}")
    return {"image": image, "kind": np.int32(kind), "index": np.int64(index)}


def _describe(name: str, index: int, record: Mapping[str, Any]) -> str:
    rid = record.get("id", "?") if isinstance(record, Mapping) else "?"
    if isinstance(rid, bytes):
        rid = rid.decode("utf-8", "replace")
    return f"{name} record {index} (id {escape_controls(repr(rid))})"


class _TrainTransform:
    """(index, record), rng -> augmented uint8 element. A class, so workers can pickle it."""

    def __init__(self, name_of: Sequence[str], image_size: int, augment: aug.AugmentConfig | None):
        self.name_of = name_of
        self.image_size = image_size
        self.augment = augment

    def __call__(self, item, rng: np.random.Generator) -> dict:
        name, (index, record) = item
        try:
            if self.augment is None:
                image = aug.eval_image(record["image"], self.image_size)
            else:
                image = aug.train_image(record["image"], self.image_size, rng, self.augment)
        except Exception as e:  # noqa: BLE001 - re-raised with the record named
            raise ValueError(f"{_describe(name, index, record)}: cannot preprocess its image: {e}") from e
        return _element(name, index, record, image)


class _EvalTransform:
    def __init__(self, image_size: int):
        self.image_size = image_size

    def __call__(self, item) -> dict:
        name, (index, record) = item
        try:
            image = aug.eval_image(record["image"], self.image_size)
        except Exception as e:  # noqa: BLE001 - re-raised with the record named
            raise ValueError(f"{_describe(name, index, record)}: cannot preprocess its image: {e}") from e
        return _element(name, index, record, image)


class _Collate:
    """Stacks elements into a (devices, per_device_batch, ...) batch, padding if short."""

    def __init__(self, num_devices: int, per_device_batch: int, image_size: int):
        self.shape = (num_devices, per_device_batch)
        self.image_size = image_size

    def __call__(self, elements: Sequence[dict]) -> dict[str, np.ndarray]:
        d, b = self.shape
        n, total = len(elements), d * b
        s = self.image_size
        # Padding is all zeros after normalisation: the mean image, not a black one.
        images = np.zeros((total, s, s, 3), np.float32)
        kind = np.zeros(total, np.int32)
        index = np.full(total, -1, np.int64)
        for i, e in enumerate(elements):
            aug.normalize(e["image"], out=images[i])
            kind[i] = e["kind"]
            index[i] = e["index"]
        valid = np.arange(total) < n
        return {
            "image": images.reshape(d, b, s, s, 3),
            "kind": kind.reshape(d, b),
            "valid": valid.reshape(d, b),
            "index": index.reshape(d, b),
        }


class _HostRows(grain.MapDataset):
    """This host's rows of every global batch: element ``j`` is element
    ``(j // local) * global_batch + offset + j % local`` of the parent.

    Placed after the per-element transform (whose random augmentation is keyed by the
    parent's index, so an element is augmented alike whichever host reads it) and before
    batching: the other hosts' elements are never read or decoded here.
    """

    def __init__(self, parent: grain.MapDataset, global_batch: int, local: int, offset: int):
        super().__init__(parent)
        self._global_batch, self._local, self._offset = global_batch, local, offset
        self._length = len(parent) // global_batch * local

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        batch, row = divmod(index, self._local)
        return self._parent[batch * self._global_batch + self._offset + row]


def host_rows(global_batch: int, process_index: int, process_count: int) -> slice:
    """Rows of a global batch that host ``process_index`` of ``process_count`` reads."""
    if not (isinstance(process_count, (int, np.integer)) and process_count >= 1):
        raise ValueError(f"process_count must be a positive integer, got {process_count!r}")
    if not (isinstance(process_index, (int, np.integer)) and 0 <= process_index < process_count):
        raise ValueError(f"process_index must be in [0, {process_count}), got {process_index!r}")
    if global_batch % process_count:
        raise ValueError(f"the global batch of {global_batch} does not split over {process_count} processes")
    local = global_batch // process_count
    return slice(process_index * local, (process_index + 1) * local)


class _Tag:
    """Pairs each element of a selection with its source's name (for error messages)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, item):
        return self.name, item


def _seed(*parts: int) -> int:
    """An independent 31-bit seed per purpose, derived from the user's seed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def _check_arguments(image_size: int, per_device_batch: int, num_devices: int, workers: int, threads: int) -> None:
    """Checked when a loader is made, not when its first batch is read."""
    for name, value in (("image_size", image_size), ("per_device_batch", per_device_batch), ("num_devices", num_devices)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if workers < 0 or threads < 0:
        raise ValueError(f"workers and threads must be >= 0, got workers={workers}, threads={threads}")


def _finish(ds: grain.MapDataset, workers: int, threads: int) -> grain.IterDataset:
    # Elements here are whole batches: a small buffer bounds memory (a 224 px float32
    # batch of 256 is 150 MB) while still keeping every thread busy.
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(1, threads)))
    if workers > 0:
        # grain's worker processes read absl flags; outside an absl app nobody parsed them.
        if not absl_flags.FLAGS.is_parsed():
            absl_flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2))
    return it


class TrainLoader(Resumable):
    """Infinite iterator of training batches with a JSON-serialisable, restorable state.

    ``get_state()`` after batch ``n`` and ``set_state`` on a fresh loader built with the
    same data arguments continue with batch ``n + 1`` exactly. The state is the position
    in the index-addressed batch sequence, so it does not depend on the number of workers
    or threads: a run may resume with a different ``workers``.
    """

    state_name = "train loader"

    def __init__(
        self,
        dataset: grain.MapDataset,
        config: dict,
        num_examples: dict[str, int],
        steps_per_epoch: int,
        workers: int,
        threads: int,
    ):
        self._dataset = dataset
        self._config = config
        self._workers = workers
        self._threads = threads
        self._position = 0
        self._iterator = None
        #: records used per source (after folds and image/label filtering)
        self.num_examples = num_examples
        #: batches that make one pass over the selected records (for schedules and logs)
        self.steps_per_epoch = steps_per_epoch

    def __iter__(self) -> TrainLoader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iterator is None:
            # Started lazily (and restarted by set_state) at the current position.
            self._iterator = iter(_finish(self._dataset[self._position :], self._workers, self._threads))
        batch = next(self._iterator)
        self._position += 1
        return batch

    def _seek(self, position: int) -> None:
        self.close()  # the reading restarts lazily at the new position
        self._position = position

    def close(self) -> None:
        """Stop worker processes (also happens when the loader is garbage collected)."""
        iterator, self._iterator = self._iterator, None
        close = getattr(iterator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> TrainLoader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mixture_weights(
    sources: Mapping[str, Any], mixture: Mapping[str, float] | None, selected: Mapping[str, np.ndarray]
) -> dict[str, float]:
    if mixture is None:
        # One shuffled union of every usable record: each source in proportion to its size.
        weights = {name: float(len(idx)) for name, idx in selected.items()}
    else:
        unknown = sorted(set(mixture) - set(sources))
        if unknown:
            raise ValueError(f"mixture names {unknown} that are not among the sources {sorted(sources)}")
        weights = {}
        for name, w in mixture.items():
            if not (isinstance(w, (int, float)) and np.isfinite(w) and w >= 0):
                raise ValueError(f"mixture weight of {name!r} must be a finite number >= 0, got {w!r}")
            weights[name] = float(w)
    weights = {k: w for k, w in weights.items() if w > 0}
    if not weights:
        raise ValueError(f"no data to train on: every mixture weight is 0 or every source is empty ({mixture})")
    for name in weights:
        if len(selected[name]) == 0:
            raise ValueError(
                f"source {name!r} has a mixture weight of {weights[name]} but no usable record "
                "(with an image and a label) in the requested folds"
            )
    return weights


def train_loader(
    sources: Mapping[str, Any],
    *,
    image_size: int,
    per_device_batch: int,
    num_devices: int = 1,
    seed: int = 0,
    folds: Sequence[int] | None = None,
    mixture: Mapping[str, float] | None = None,
    augment: bool | aug.AugmentConfig = True,
    workers: int = 0,
    threads: int = 2,
    process_index: int = 0,
    process_count: int = 1,
) -> TrainLoader:
    """Infinite, deterministically shuffled training batches.

    Args:
      sources: name -> source (see the module docstring); the names in ``mixture`` (or
        the image sources ``posts`` and ``web`` that are present) are read.
      image_size: side S of the square images.
      per_device_batch, num_devices: batch layout (devices, per_device_batch, ...) of
        this host's local devices.
      seed: shuffling and augmentation seed; each source's epochs are reshuffled from
        (seed, epoch). The same on every host.
      folds: folds to train on (e.g. ``[0, 1, 2, 3]``); None for all.
      mixture: name -> proportion of each batch drawn from that source (e.g.
        ``{"posts": 0.5, "web": 0.5}`` for multitask training); proportions need not sum
        to 1, a 0 leaves the source out. None: every usable record equally often.
      augment: True for the default :class:`~drugjax.data.augment.AugmentConfig`, an
        ``AugmentConfig`` to configure it, False for the evaluation crop.
      workers: worker processes (0: threads of this process only).
      threads: reader threads per process.
      process_index, process_count: this host and the number of hosts
        (``jax.process_index()``, ``jax.process_count()``); the global batch is
        ``per_device_batch * num_devices * process_count`` and this host gets its rows
        (see the module docstring).

    Returns:
      A :class:`TrainLoader`; its batches have ``valid`` all True and no padding.
    """
    _check_arguments(image_size, per_device_batch, num_devices, workers, threads)
    if augment is True:
        augment = aug.AugmentConfig()
    elif augment is False:
        augment = None
    elif not isinstance(augment, aug.AugmentConfig):
        raise ValueError(f"augment must be a bool or an AugmentConfig, got {augment!r}")
    names = list(mixture) if mixture is not None else [n for n in IMAGE_SOURCES if n in sources]
    if not names:
        raise ValueError(f"no image source among {sorted(sources)}; expected some of {list(IMAGE_SOURCES)}")
    selected = {}
    for name in names:
        if name not in sources:
            raise ValueError(f"mixture names {name!r}, which is not among the sources {sorted(sources)}")
        selected[name] = select(sources[name], folds)
    weights = _mixture_weights(sources, mixture, selected)

    parts, part_weights = [], []
    for i, (name, weight) in enumerate(weights.items()):
        ds = grain.MapDataset.source(_Selection(name, sources[name], selected[name]))
        # shuffle + repeat: epoch e of this source is a permutation seeded by (seed, e).
        ds = ds.shuffle(seed=_seed(seed, 1, i)).repeat().map(_Tag(name))
        parts.append(ds)
        part_weights.append(weight)
    ds = grain.MapDataset.mix(parts, part_weights) if len(parts) > 1 else parts[0]
    ds = ds.random_map(_TrainTransform(list(weights), image_size, augment), seed=_seed(seed, 2))
    local_batch = per_device_batch * num_devices
    global_batch = local_batch * process_count
    rows = host_rows(global_batch, process_index, process_count)
    if process_count > 1:
        ds = _HostRows(ds, global_batch, local_batch, rows.start)
    ds = ds.batch(local_batch, drop_remainder=True, batch_fn=_Collate(num_devices, per_device_batch, image_size))
    config = {
        "sources": {n: int(len(sources[n])) for n in weights},
        "selected": {n: int(len(selected[n])) for n in weights},
        "weights": weights,
        "folds": None if folds is None else sorted(int(f) for f in folds),
        "seed": int(seed),
        "image_size": int(image_size),
        # The global batch only: batch n holds the same elements whatever the device
        # and host layout, so a run may resume on another number of devices.
        "global_batch": int(global_batch),
        "augment": None if augment is None else dataclasses.asdict(augment),
    }
    config = json.loads(json.dumps(config))  # tuples -> lists, as a restored state has them
    total = sum(len(selected[n]) for n in weights)
    steps = max(1, total // global_batch)
    return TrainLoader(ds, config, {n: len(selected[n]) for n in weights}, steps, workers, threads)


class EvalLoader:
    """One ordered pass over the selected records; iterable any number of times."""

    def __init__(self, dataset: grain.IterDataset, num_examples: dict[str, int], num_batches: int):
        self._dataset = dataset
        #: records per source in the pass
        self.num_examples = num_examples
        self._num_batches = num_batches

    def __len__(self) -> int:
        return self._num_batches

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self._dataset)


def eval_loader(
    sources: Mapping[str, Any],
    *,
    image_size: int,
    per_device_batch: int,
    num_devices: int = 1,
    folds: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    workers: int = 0,
    threads: int = 2,
) -> EvalLoader:
    """Every selected record once, in source order then record order; no augmentation.

    The last batch is padded with all-zero (mean) images; its ``valid`` mask is False and ``index``
    -1 there, so metrics can drop the padding.

    Args:
      sources: name -> source; ``names`` (default: the image sources ``posts`` then
        ``web`` that are present) are read, one after the other.
      image_size, per_device_batch, num_devices: as for :func:`train_loader`.
      folds: folds to evaluate (e.g. ``[4]``); None for all.
      workers, threads: as for :func:`train_loader`; the output does not depend on them.
    """
    _check_arguments(image_size, per_device_batch, num_devices, workers, threads)
    if names is None:
        names = [n for n in IMAGE_SOURCES if n in sources]
    missing = [n for n in names if n not in sources]
    if missing or not names:
        raise ValueError(f"eval_loader: sources {missing or list(names)} not among {sorted(sources)}")
    parts = []
    counts = {}
    for name in names:
        idx = select(sources[name], folds)
        counts[name] = len(idx)
        if len(idx):
            parts.append(grain.MapDataset.source(_Selection(name, sources[name], idx)).map(_Tag(name)))
    total = sum(counts.values())
    if total == 0:
        raise ValueError(f"eval_loader: no usable record (with an image and a label) in folds {folds} of {list(names)}")
    ds = grain.MapDataset.concatenate(parts) if len(parts) > 1 else parts[0]
    ds = ds.map(_EvalTransform(image_size))
    global_batch = per_device_batch * num_devices
    ds = ds.batch(global_batch, drop_remainder=False, batch_fn=_Collate(num_devices, per_device_batch, image_size))
    return EvalLoader(_finish(ds, workers, threads), counts, -(-total // global_batch))
