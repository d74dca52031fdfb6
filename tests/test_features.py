"""The loader over precomputed features (drugjax.training.features.FeatureLoader)."""

from __future__ import annotations

import numpy as np
import pytest

from drugjax.training.features import FeatureLoader


def _data(n: int = 23, dim: int = 3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, 6, n).astype(np.int32)


def test_two_hosts_read_their_rows_of_the_one_host_batches():
    features, kinds = _data()
    one = FeatureLoader(features, kinds, per_device_batch=2, num_devices=4, seed=5)
    hosts = [FeatureLoader(features, kinds, per_device_batch=2, num_devices=2, seed=5, process_index=p, process_count=2)
             for p in range(2)]
    assert {h.steps_per_epoch for h in hosts} == {one.steps_per_epoch} == {2}  # 23 // 8
    assert {str(h.get_state()) for h in hosts} == {str(one.get_state())}
    for _ in range(5):  # past two epochs
        want = next(one)
        got = [next(h) for h in hosts]
        assert got[0]["x"].shape == (2, 2, 3)
        for k in want:
            assert np.array_equal(np.concatenate([g[k] for g in got]), want[k]), k
        # the two halves are different rows
        assert not np.array_equal(got[0]["x"], got[1]["x"])


def test_host_arguments_are_checked():
    features, kinds = _data()
    with pytest.raises(ValueError, match="process_index"):
        FeatureLoader(features, kinds, per_device_batch=2, num_devices=2, seed=0, process_index=-1, process_count=2)
    with pytest.raises(ValueError, match="process_count"):
        FeatureLoader(features, kinds, per_device_batch=2, num_devices=2, seed=0, process_index=0, process_count=0)
