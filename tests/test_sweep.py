"""The vmap sweep engine: each configuration ends where the ordinary train step, run on
it alone, ends (parameters, losses, metrics); grouping; resume after a kill."""

import dataclasses

import jax
import numpy as np
import pytest

from drugjax.training.config import OptimConfig
from drugjax.training.sweep import HeadConfig, Schedule, train_sweep
from train_support import feature_table


SCHEDULE = Schedule(steps=12, batch_size=8, chunk_steps=5, optim=OptimConfig(warmup_steps=2))
CONFIGS = [
    HeadConfig(relation_weight=0.0, seed=0, fold=0, hidden=(16, 16)),
    HeadConfig(relation_weight=0.5, seed=1, fold=2, hidden=(16, 16), learning_rate=3e-3),
    HeadConfig(relation_weight=1.0, seed=2, fold=4, hidden=(16, 16), decay=0.8, weight_decay=1e-3),
]


def _assert_close(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_each_configuration_matches_the_ordinary_step_run_alone():
    table = feature_table()
    swept = train_sweep(table, CONFIGS, SCHEDULE, engine="vmap", keep_params=True)
    alone = train_sweep(table, CONFIGS, SCHEDULE, engine="loop", keep_params=True)
    for s, a in zip(swept, alone):
        assert s["config"] == a["config"]
        _assert_close(s["params"], a["params"])
        np.testing.assert_allclose(s["loss"], a["loss"], rtol=1e-5)
        for metric in ("accuracy", "precision", "recall", "f1", "auc"):
            assert s["val"][metric] == pytest.approx(a["val"][metric], rel=1e-5)
    # the configurations really differ (otherwise the comparison proves little)
    assert len({round(float(r["loss"][-1]), 6) for r in swept}) == len(CONFIGS)


def test_kept_predictions_are_each_configurations_drug_probability_on_every_row():
    from drugjax.metrics import binary_metrics

    table = feature_table()
    configs = [CONFIGS[1], dataclasses.replace(CONFIGS[0], tasks=("drug",))]  # 4 heads, 1 head
    swept = train_sweep(table, configs, SCHEDULE, engine="vmap", keep_predictions=True)
    alone = train_sweep(table, configs[1:], SCHEDULE, engine="loop", keep_predictions=True)
    np.testing.assert_allclose(swept[1]["drug_probability"], alone[0]["drug_probability"], rtol=1e-4, atol=1e-6)
    for s in swept:
        assert s["drug_probability"].shape == (len(table.kinds),)
        rows = table.validation_rows(s["config"].fold)
        again = binary_metrics(table.kinds[rows] == 1, s["drug_probability"][rows])
        assert again["auc"] == pytest.approx(s["val"]["auc"])
    assert "drug_probability" not in train_sweep(table, configs[1:], SCHEDULE)[0]


def test_configurations_of_other_shapes_are_grouped_and_sharded_over_devices(monkeypatch):
    """Trunk widths and dropout on or off make groups (one program each); dropout rates of
    one shape share a program, and each configuration with dropout drops what train.py's
    heads drop (the loop engine trains those)."""
    import drugjax.training.sweep as sweep

    programs = []

    class CountedProgram(sweep._Program):
        def __init__(self, config, *args):
            programs.append(config.program_key())
            super().__init__(config, *args)

    monkeypatch.setattr(sweep, "_Program", CountedProgram)
    monkeypatch.setattr(sweep, "_PROGRAMS", {})  # none kept from an earlier test
    table = feature_table()
    configs = CONFIGS + [HeadConfig(seed=3, fold=1, hidden=(8,)), HeadConfig(seed=4, fold=3, hidden=(8,), dropout=0.25),
                         HeadConfig(seed=5, fold=2, hidden=(8,), dropout=0.5, learning_rate=3e-3)]
    swept = train_sweep(table, configs, SCHEDULE, engine="vmap", keep_params=True, max_part=2)
    assert [r["config"] for r in swept] == configs
    assert len(programs) == 3  # (16, 16); (8,); (8,) with dropout, both rates in one
    assert swept[3]["params"]["trunk_0"]["kernel"].shape == (16, 8)
    alone = train_sweep(table, configs[3:], SCHEDULE, engine="loop", keep_params=True)
    for s, a in zip(swept[3:], alone):
        _assert_close(s["params"], a["params"])


def test_a_killed_sweep_resumes_from_its_last_chunk(tmp_path, monkeypatch):
    table = feature_table()
    reference = train_sweep(table, CONFIGS, SCHEDULE, keep_params=True)
    import drugjax.training.sweep as sweep

    saves = []
    save = sweep._PartState.save

    def save_then_die(self, *a, **k):
        save(self, *a, **k)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt  # killed after its second chunk was saved
    monkeypatch.setattr(sweep._PartState, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_sweep(table, CONFIGS, SCHEDULE, workdir=tmp_path, keep_params=True)
    monkeypatch.undo()
    resumed = train_sweep(table, CONFIGS, SCHEDULE, workdir=tmp_path, keep_params=True)
    for r, ref in zip(resumed, reference):
        _assert_close(r["params"], ref["params"])
        np.testing.assert_allclose(r["loss"], ref["loss"], rtol=1e-6)


def test_a_diverged_configuration_is_flagged_not_reported():
    table = feature_table()
    bad = dataclasses.replace(CONFIGS[0], learning_rate=1e30)
    schedule = dataclasses.replace(SCHEDULE, optim=OptimConfig(warmup_steps=0, clip_norm=0.0))
    result = train_sweep(table, [bad, CONFIGS[1]], schedule)
    assert result[0]["diverged"] and result[0]["val"] is None
    assert not result[1]["diverged"] and result[1]["val"]["auc"] is not None
