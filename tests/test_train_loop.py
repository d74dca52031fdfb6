"""The training loop on tiny in-memory data: NaN guard, resume rules, single-task runs."""

import json

import jax
import numpy as np
import pytest
from train_support import make_sources, tiny_config

from drugjax.training.checkpoint import read_params
from drugjax.training.loop import ConfigError, NonFiniteError, train_and_evaluate
from drugjax.training.metrics import binary_metrics


def _heads_cfg(tmp_path, **kw):
    # model.kind=heads: features precomputed once with the (tiny) backbone; fast steps.
    return tiny_config(**{"model.kind": "heads", "data.data_dir": str(tmp_path / "cache"), **kw})


def test_nan_guard_names_step_and_term_and_keeps_last_good_checkpoint(tmp_path):
    # An absurd learning rate: the first step (warm-up, lr 0) is fine, then it diverges.
    cfg = _heads_cfg(tmp_path, **{"optim.learning_rate": 1e30, "optim.warmup_steps": 1, "optim.clip_norm": 0.0,
                                  "checkpoint_every": 1, "steps": 8})
    with pytest.raises(NonFiniteError, match=r"non-finite loss term of task '\w+' \(\w+\) at step (\d+)") as e:
        train_and_evaluate(cfg, tmp_path / "run", sources=make_sources())
    bad_step = int(str(e.value).split(" at step ")[1].split(";")[0])
    good = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
    assert good and good[-1] == bad_step - 1
    assert f"last good checkpoint is step {good[-1]}" in str(e.value)
    params = read_params(tmp_path / "run")["params"]
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(params))


def test_single_task_run_then_restart_is_a_no_op_and_config_change_is_refused(tmp_path):
    sources = make_sources()
    cfg = _heads_cfg(tmp_path, **{"model.tasks": ["drug"], "data.sources": ["posts"], "steps": 4})
    res = train_and_evaluate(cfg, tmp_path / "run", sources=sources)
    assert res["step"] == 4 and not res["interrupted"]
    assert set(res["val"]) >= {"accuracy", "precision", "recall", "f1", "auc", "loss"}
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["val"]["n"] == res["val"]["n"] > 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert {json.loads(l)["split"] for l in lines} == {"train", "val"}
    # Started again: nothing left to train; the same evaluation comes back.
    again = train_and_evaluate(cfg, tmp_path / "run", sources=sources)
    assert again["step"] == 4 and again["val"] == res["val"]
    # A different model in the same run directory is refused, naming what changed.
    with pytest.raises(ConfigError, match="model.hidden"):
        train_and_evaluate(_heads_cfg(tmp_path, **{"model.tasks": ["drug"], "data.sources": ["posts"],
                                                   "steps": 4, "model.hidden": [8]}), tmp_path / "run", sources=sources)


def test_bad_config_values_fail_with_the_key_named(tmp_path):
    with pytest.raises(ConfigError, match="data.batch_size"):
        train_and_evaluate(_heads_cfg(tmp_path, **{"data.batch_size": 0}), tmp_path / "r", sources=make_sources())
    with pytest.raises(ConfigError, match="model.tasks"):
        train_and_evaluate(_heads_cfg(tmp_path, **{"model.tasks": ["weed"]}), tmp_path / "r", sources=make_sources())


def test_binary_metrics():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    m = binary_metrics(y, p)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(1 / 2)
    assert m["auc"] == pytest.approx(5 / 6)
    assert np.isnan(binary_metrics(np.zeros(3), np.ones(3) / 2)["auc"])
