"""The grain input pipeline over small in-memory sources (no build needed)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from drugjax.data import augment as aug
from drugjax.data import pipeline as P
from drugjax.tasks import INSTAGRAM_NEGATIVE, INSTAGRAM_POSITIVE, WEB_PILLS, WEB_WEED


def _png(value: int, w: int = 20, h: int = 16) -> bytes:
    buf = io.BytesIO()
    # A horizontal ramp, so flips and crops are visible, offset by a per-record value.
    ramp = (np.arange(w, dtype=np.int64) * 4 + value) % 256
    Image.fromarray(np.broadcast_to(ramp[None, :, None], (h, w, 3)).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _sources():
    # posts: every 5th has no image, record 3 has no label; web: four classes.
    posts = [
        {"id": f"p{i}", "image": _png(i * 7) if i % 5 else b"", "kind": -1 if i == 3 else i % 2, "fold": i % 5}
        for i in range(23)
    ]
    web = [{"id": f"w{i}", "image": _png(100 + i), "kind": 2 + i % 4, "fold": i % 5} for i in range(9)]
    return {"posts": posts, "web": web}


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_train_batch_shapes_and_dtypes():
    loader = P.train_loader(_sources(), image_size=12, per_device_batch=3, num_devices=2, seed=0)
    batch = next(loader)
    assert batch["image"].shape == (2, 3, 12, 12, 3) and batch["image"].dtype == np.float32
    assert batch["kind"].shape == (2, 3) and batch["kind"].dtype == np.int32
    assert batch["valid"].shape == (2, 3) and batch["valid"].dtype == bool and batch["valid"].all()
    assert batch["index"].shape == (2, 3) and batch["index"].dtype == np.int64
    # Normalised: the uint8 range maps onto [-mean/std, (1-mean)/std].
    lo, hi = -aug.IMAGENET_MEAN / aug.IMAGENET_STD, (1 - aug.IMAGENET_MEAN) / aug.IMAGENET_STD
    assert (batch["image"] >= lo - 1e-5).all() and (batch["image"] <= hi + 1e-5).all()
    # posts: 23 - 5 without image - record 3 unlabelled = 17; web: 9.
    assert loader.num_examples == {"posts": 17, "web": 9}
    assert loader.steps_per_epoch == 26 // 6


def test_normalisation_is_imagenet_mean_std():
    flat = io.BytesIO()
    Image.fromarray(np.full((10, 10, 3), (255, 128, 0), np.uint8)).save(flat, "PNG")
    src = {"posts": [{"id": "x", "image": flat.getvalue(), "kind": 1, "fold": 0}]}
    batch = next(iter(P.eval_loader(src, image_size=4, per_device_batch=1)))
    want = (np.array([255, 128, 0]) / 255 - aug.IMAGENET_MEAN) / aug.IMAGENET_STD
    np.testing.assert_allclose(batch["image"][0, 0], np.broadcast_to(want, (4, 4, 3)), rtol=1e-5, atol=1e-5)


def test_same_seed_same_batches_other_seed_differs():
    a = _take(P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=5), 3)
    b = _take(P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=5), 3)
    c = _take(P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=6), 3)
    assert all(_equal(x, y) for x, y in zip(a, b))
    assert not all(_equal(x, y) for x, y in zip(a, c))


def test_epochs_are_permutations_reshuffled_per_epoch():
    src = {"web": _sources()["web"]}  # 9 records, every one usable
    loader = P.train_loader(src, image_size=8, per_device_batch=3, seed=1, augment=False)
    order = np.concatenate([b["index"].ravel() for b in _take(loader, 9)])  # 3 epochs
    epochs = order.reshape(3, 9)
    for e in epochs:
        assert sorted(e.tolist()) == list(range(9))
    assert len({tuple(e) for e in epochs}) == 3  # each epoch has its own order


def test_folds_select_records():
    loader = P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=0, folds=[2, 3])
    srcs = _sources()
    for batch in _take(loader, 5):
        for kind, index in zip(batch["kind"].ravel(), batch["index"].ravel()):
            name = "posts" if kind in (INSTAGRAM_NEGATIVE, INSTAGRAM_POSITIVE) else "web"
            record = srcs[name][index]
            assert record["fold"] in (2, 3) and record["image"] and record["kind"] == kind


def test_mixture_draws_in_configured_proportions():
    loader = P.train_loader(
        _sources(), image_size=8, per_device_batch=8, seed=0, mixture={"posts": 3, "web": 1}, augment=False
    )
    kinds = np.concatenate([b["kind"].ravel() for b in _take(loader, 6)])
    web_share = np.isin(kinds, [2, 3, 4, 5]).mean()
    assert web_share == pytest.approx(0.25)
    only_web = P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=0, mixture={"posts": 0, "web": 1})
    assert np.isin(next(only_web)["kind"], [2, 3, 4, 5]).all()


def test_mixture_errors_are_clear():
    with pytest.raises(ValueError, match="not among the sources"):
        P.train_loader(_sources(), image_size=8, per_device_batch=4, mixture={"tweets": 1.0})
    with pytest.raises(ValueError, match="finite number >= 0"):
        P.train_loader(_sources(), image_size=8, per_device_batch=4, mixture={"posts": -1.0})
    with pytest.raises(ValueError, match="no usable record"):
        P.train_loader(_sources(), image_size=8, per_device_batch=4, folds=[7], mixture={"posts": 1.0})


def test_resume_mid_epoch_gives_exactly_the_next_batches():
    kwargs = dict(image_size=8, per_device_batch=3, num_devices=2, seed=3, mixture={"posts": 1, "web": 1})
    reference = P.train_loader(_sources(), **kwargs)
    batches = _take(reference, 7)  # 7 * 6 = 42 elements: past the end of the first epochs
    first = P.train_loader(_sources(), **kwargs)
    _take(first, 4)
    state = json.loads(json.dumps(first.get_state()))  # as a checkpoint stores it
    resumed = P.train_loader(_sources(), **kwargs)
    resumed.set_state(state)
    for want in batches[4:]:
        assert _equal(next(resumed), want)


def test_resume_on_another_device_layout_gives_the_same_elements():
    """A run saved on 2 devices resumes on 1 or 6: the state holds the global batch only."""
    two = dict(image_size=8, per_device_batch=3, num_devices=2, seed=3, mixture={"posts": 1, "web": 1})
    reference = _take(P.train_loader(_sources(), **two), 6)
    first = P.train_loader(_sources(), **two)
    _take(first, 3)
    state = json.loads(json.dumps(first.get_state()))
    for layout in ({"per_device_batch": 6, "num_devices": 1}, {"per_device_batch": 1, "num_devices": 6}):
        resumed = P.train_loader(_sources(), **{**two, **layout})
        resumed.set_state(state)
        for want in reference[3:]:
            got = next(resumed)
            assert np.array_equal(got["image"].reshape(want["image"].shape), want["image"])
            assert np.array_equal(got["index"].reshape(-1), want["index"].reshape(-1))
    # a state written before the layout was dropped from it (version 1) still resumes
    old = {**state, "version": 1, "config": {**{k: v for k, v in state["config"].items() if k != "global_batch"},
                                             "per_device_batch": 3, "num_devices": 2}}
    resumed = P.train_loader(_sources(), **two)
    resumed.set_state(old)
    assert _equal(next(resumed), reference[3])


class _CountingSource(list):
    """A list source that records which records were read (to see what a host decodes)."""

    def __init__(self, records):
        super().__init__(records)
        self.read = []

    def __getitem__(self, i):
        self.read.append(i)
        return super().__getitem__(i)


def test_two_hosts_read_their_rows_of_the_one_host_batches():
    """Each of 2 hosts gets its half of every global batch; concatenated in process order
    they are the 1-host batches (augmentation included), and a host reads only its rows."""
    kwargs = dict(image_size=8, per_device_batch=3, seed=3, mixture={"posts": 1, "web": 1}, threads=0)
    steps = 5  # 5 * 12 = 60 elements: several epochs of both sources
    one = P.train_loader(_sources(), num_devices=4, **kwargs)
    reference = _take(one, steps)
    hosts = []
    for p in range(2):
        sources = {name: _CountingSource(records) for name, records in _sources().items()}
        loader = P.train_loader(sources, num_devices=2, process_index=p, process_count=2, **kwargs)
        assert loader.steps_per_epoch == one.steps_per_epoch
        assert loader.get_state()["config"] == one.get_state()["config"]  # resumable across layouts
        scanned = {name: len(src.read) for name, src in sources.items()}  # select() reads every record once
        batches = _take(loader, steps)
        read = sorted((name, i) for name, src in sources.items() for i in src.read[scanned[name]:])
        hosts.append((batches, read))
    for s, want in enumerate(reference):
        for k in want:
            got = np.concatenate([hosts[p][0][s][k] for p in range(2)])  # (2 + 2, 3, ...)
            assert np.array_equal(got, want[k]), (s, k)
    # Each host read (and decoded) the records of its own rows only: half the elements.
    for batches, read in hosts:
        assert len(read) == steps * 6
        assert sorted(i for _, i in read) == sorted(int(i) for b in batches for i in b["index"].reshape(-1))
    with pytest.raises(ValueError, match="process_index"):
        P.train_loader(_sources(), num_devices=2, process_index=2, process_count=2, **kwargs)


def test_resume_with_worker_processes_matches_in_process_batches():
    # Batches are a function of (seed, position) only, so a run may resume with other
    # workers; this also exercises the multiprocessing path (spawned workers).
    kwargs = dict(image_size=8, per_device_batch=2, num_devices=2, seed=0)
    batches = _take(P.train_loader(_sources(), **kwargs), 4)
    with P.train_loader(_sources(), workers=1, **kwargs) as loader:
        loader.set_state({**P.train_loader(_sources(), **kwargs).get_state(), "next_batch": 2})
        assert _equal(next(loader), batches[2])
        assert _equal(next(loader), batches[3])


def test_state_from_other_settings_is_refused():
    state = P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=0).get_state()
    other = P.train_loader(_sources(), image_size=8, per_device_batch=4, seed=1)
    with pytest.raises(ValueError, match="different data settings.*seed"):
        other.set_state(state)
    with pytest.raises(ValueError, match="not a drugjax train loader state"):
        other.set_state({"next_index": 3})


def test_augmentation_changes_images_and_can_be_turned_off():
    src = {"web": [{"id": "w", "image": _png(0, w=40, h=40), "kind": WEB_WEED, "fold": 0}]}
    plain = np.stack([b["image"][0, 0] for b in _take(P.train_loader(src, image_size=16, per_device_batch=1, augment=False), 4)])
    assert all(np.array_equal(plain[0], p) for p in plain)
    augmented = np.stack([b["image"][0, 0] for b in _take(P.train_loader(src, image_size=16, per_device_batch=1), 8)])
    assert len({a.tobytes() for a in augmented}) > 1
    only_flip = aug.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=True)
    flipped = [b["image"][0, 0] for b in _take(P.train_loader(src, image_size=16, per_device_batch=1, augment=only_flip), 8)]
    # Every image is the plain one or its mirror, and both occur.
    mirrored = [np.array_equal(f, plain[0][:, ::-1]) for f in flipped]
    assert all(m or np.array_equal(f, plain[0]) for m, f in zip(mirrored, flipped)) and 0 < sum(mirrored) < 8
    with pytest.raises(ValueError, match="crop_scale"):
        aug.AugmentConfig(crop_scale=(0.0, 1.0))


def test_random_resized_crop_box_stays_inside():
    rng = np.random.default_rng(0)
    for w, h in [(40, 40), (300, 20), (20, 300), (1, 1)]:
        for _ in range(50):
            left, top, right, bottom = aug.random_resized_crop_box(rng, w, h, (0.08, 1.0), (3 / 4, 4 / 3))
            assert 0 <= left < right <= w and 0 <= top < bottom <= h


def test_eval_one_ordered_pass_with_padding():
    srcs = _sources()
    loader = P.eval_loader(srcs, image_size=8, per_device_batch=4, num_devices=2, folds=[0, 1])
    # posts fold 0/1 with image: 1, 6, 11, 16, 21 (0, 5, ... have none); web: 0, 1, 5, 6.
    assert loader.num_examples == {"posts": 5, "web": 4} and len(loader) == 2
    for _ in range(2):  # iterable more than once, same result
        batches = list(loader)
        assert len(batches) == 2
        index = np.concatenate([b["index"].ravel() for b in batches])
        valid = np.concatenate([b["valid"].ravel() for b in batches])
        kind = np.concatenate([b["kind"].ravel() for b in batches])
        assert index.tolist() == [1, 6, 11, 16, 21, 0, 1, 5, 6] + [-1] * 7
        assert valid.tolist() == [True] * 9 + [False] * 7
        assert kind[:9].tolist() == [1, 0, 1, 0, 1, 2, 3, 3, 4]
        assert batches[1]["image"].shape == (2, 4, 8, 8, 3)
        assert not batches[1]["image"].reshape(8, -1)[1:].any()  # padding is zeros


def test_eval_names_and_uint8_array_images():
    src = {
        "posts": [{"id": "a", "image": np.full((6, 9, 3), 50, np.uint8), "kind": WEB_PILLS, "fold": 0}],
        "other": [{"id": "b", "image": b"", "kind": 0, "fold": 0}],
    }
    loader = P.eval_loader(src, image_size=4, per_device_batch=2, names=["posts"])
    (batch,) = list(loader)
    assert batch["valid"].tolist() == [[True, False]]
    with pytest.raises(ValueError, match="no usable record"):
        P.eval_loader(src, image_size=4, per_device_batch=2, names=["other"])


def test_undecodable_image_names_the_record():
    src = {"posts": [{"id": "broken", "image": b"not an image", "kind": 1, "fold": 0}]}
    with pytest.raises(ValueError, match="posts record 0 \\(id 'broken'\\): cannot preprocess its image"):
        next(iter(P.eval_loader(src, image_size=4, per_device_batch=1)))


def test_missing_fields_are_reported():
    with pytest.raises(ValueError, match="no 'fold' field"):
        P.train_loader({"posts": [{"image": b"x", "kind": 1}]}, image_size=4, per_device_batch=1)
