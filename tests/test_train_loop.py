"""The training loop on tiny in-memory data: NaN guard, resume rules, single-task runs."""

import json

import jax
import numpy as np
import pytest
from train_support import make_sources, tiny_config

from drugjax.training.checkpoint import read_params
from drugjax.training.loop import ConfigError, NonFiniteError, train_and_evaluate
from drugjax.metrics import binary_metrics


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


def _sigterm():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


def _checkpoint_steps(run):
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.parametrize("phase", ["compile", "log", "checkpoint", "eval"])
def test_sigterm_at_every_phase_saves_what_it_says(tmp_path, monkeypatch, phase):
    """Whenever SIGTERM lands, the step the run reports is a checkpoint that exists, and
    the next run resumes from it."""
    import drugjax.training.loop as loop
    from drugjax.training.checkpoint import Checkpoints

    # log at 3, checkpoint at 4, evaluate at 5: the phases fall on different steps.
    cfg = _heads_cfg(tmp_path, steps=9, log_every=3, checkpoint_every=4, eval_every=5)
    landing = {"compile": 1, "log": 3, "checkpoint": 4, "eval": 5}[phase]
    if phase == "compile":
        make_steps = loop.make_steps

        def make_steps_that_signal(*a, **k):
            train_fn, eval_fn = make_steps(*a, **k)
            calls = []

            def train_and_signal(*args):
                calls.append(1)
                if len(calls) == 1:
                    _sigterm()  # while the first step is being compiled
                return train_fn(*args)
            return train_and_signal, eval_fn
        monkeypatch.setattr(loop, "make_steps", make_steps_that_signal)
    elif phase == "log":
        write = loop.MetricWriter.write

        def write_and_signal(self, step, split, values):
            write(self, step, split, values)
            if split == "train" and step == landing:
                _sigterm()
        monkeypatch.setattr(loop.MetricWriter, "write", write_and_signal)
    elif phase == "checkpoint":
        save = Checkpoints.save

        def save_and_signal(self, step, *a, **k):
            save(self, step, *a, **k)
            if step == landing:
                _sigterm()
        monkeypatch.setattr(Checkpoints, "save", save_and_signal)
    else:
        from drugjax.training.validation import Evaluator

        evaluate = Evaluator.run

        def evaluate_and_signal(self, *a, **k):
            out = evaluate(self, *a, **k)
            _sigterm()
            return out
        monkeypatch.setattr(Evaluator, "run", evaluate_and_signal)

    run = tmp_path / "run"
    stopped = train_and_evaluate(cfg, run, sources=make_sources())
    assert stopped["interrupted"]
    # A signal during a save is acted on at the next step (which saves again).
    assert stopped["step"] == (landing + 1 if phase == "checkpoint" else landing)
    assert stopped["step"] in _checkpoint_steps(run)
    assert json.loads((run / "results.json").read_text())["step"] == stopped["step"]

    monkeypatch.undo()
    finished = train_and_evaluate(cfg, run, sources=make_sources())
    assert finished["step"] == 9 and not finished["interrupted"]
    train_steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()
                   if json.loads(l)["split"] == "train"]
    assert train_steps == sorted(set(train_steps))  # each logged once, the resume started at the saved step


def test_changed_steps_are_refused_for_a_cosine_schedule(tmp_path):
    sources = make_sources()
    train_and_evaluate(_heads_cfg(tmp_path, steps=4), tmp_path / "run", sources=sources)
    with pytest.raises(ConfigError, match=r"steps=4.*init_from="):
        train_and_evaluate(_heads_cfg(tmp_path, steps=8), tmp_path / "run", sources=sources)
    # a constant schedule does not depend on steps: the run is extended
    train_and_evaluate(_heads_cfg(tmp_path, steps=4, **{"optim.schedule": "constant"}), tmp_path / "c", sources=sources)
    res = train_and_evaluate(_heads_cfg(tmp_path, steps=8, **{"optim.schedule": "constant"}), tmp_path / "c",
                             sources=sources)
    assert res["step"] == 8


@pytest.mark.parametrize("key", ["log_every", "eval_every", "checkpoint_every"])
def test_zero_intervals_are_refused_at_start(tmp_path, key):
    with pytest.raises(ConfigError, match=f"{key} must be >= 1"):
        train_and_evaluate(_heads_cfg(tmp_path, **{key: 0}), tmp_path / "r", sources=make_sources())
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_results_hold_best_step_metrics_and_data_counts(tmp_path):
    sources = make_sources()
    sources["posts"][0]["image"] = None  # a post without a picture is counted, not silently dropped
    res = train_and_evaluate(_heads_cfg(tmp_path, steps=6, eval_every=2), tmp_path / "run", sources=sources)
    assert res["best_step"] in (2, 4, 6) and res["best_val"]["auc"] is not None
    assert res["data"]["posts"]["records"] == 40 and res["data"]["posts"]["without_image"] == 1
    assert res["data"]["posts"]["used"] == 39


def _params(run):
    return read_params(run)["params"]


def _assert_bitwise(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _die_after_train_line(monkeypatch, step):
    """The next run dies right after writing the train line of ``step``: as abrupt as a
    kill for what is on disk (no SIGTERM, nothing saved on the way out)."""
    import drugjax.training.loop as loop

    write = loop.MetricWriter.write

    def write_then_die(self, at, split, values):
        write(self, at, split, values)
        if split == "train" and at == step:
            raise KeyboardInterrupt
    monkeypatch.setattr(loop.MetricWriter, "write", write_then_die)


def test_heads_run_killed_mid_way_resumes_bitwise(tmp_path, monkeypatch):
    """model.kind=heads (the paper's set-up): a run that dies between checkpoints (no
    SIGTERM, nothing saved on the way out) resumes and ends with the same parameters."""
    cfg = _heads_cfg(tmp_path, steps=9, log_every=1, checkpoint_every=2, eval_every=9)
    train_and_evaluate(cfg, tmp_path / "reference", sources=make_sources())
    _die_after_train_line(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, tmp_path / "run", sources=make_sources())
    monkeypatch.undo()
    res = train_and_evaluate(cfg, tmp_path / "run", sources=make_sources())
    assert res["step"] == 9
    _assert_bitwise(_params(tmp_path / "run"), _params(tmp_path / "reference"))


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(tmp_path, monkeypatch):
    """Killed at step 3 with checkpoints every 5: the rerun starts at 0 and what the
    killed attempt wrote to metrics.jsonl is dropped (TensorBoard is told to purge its
    events from step 1 on)."""
    cfg = _heads_cfg(tmp_path, steps=6, log_every=1, checkpoint_every=5, eval_every=6)
    _die_after_train_line(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, tmp_path / "run", sources=make_sources())
    monkeypatch.undo()
    assert not list((tmp_path / "run" / "checkpoints").glob("[0-9]*"))
    train_and_evaluate(cfg, tmp_path / "run", sources=make_sources())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["split"]) for r in records]
    assert sorted(logged) == sorted(set(logged))
    assert [step for step, split in logged if split == "train"] == [1, 2, 3, 4, 5, 6]
    assert [step for step, split in logged if split == "val"] == [6]


def test_init_from_warm_starts_with_the_runs_parameters(tmp_path):
    sources = make_sources()
    train_and_evaluate(_heads_cfg(tmp_path, steps=4), tmp_path / "first", sources=sources)
    # The first warm-up step has learning rate 0: after it the parameters are the warm start's.
    cfg = _heads_cfg(tmp_path, steps=2, eval_every=2, checkpoint_every=1,
                     **{"optim.warmup_steps": 1, "init_from": str(tmp_path / "first")})
    train_and_evaluate(cfg, tmp_path / "second", sources=sources)
    _assert_bitwise(_params(tmp_path / "second" / "checkpoints" / "1"), _params(tmp_path / "first"))
    # An end-to-end run warm-starts the heads of a heads-only run, and refuses another shape.
    with pytest.raises(ConfigError, match="init_from=.*match neither"):
        train_and_evaluate(_heads_cfg(tmp_path, steps=1, **{"model.hidden": [4], "init_from": str(tmp_path / "first")}),
                           tmp_path / "third", sources=sources)


def test_feature_cache_hits_for_the_same_data_and_misses_for_other_data(tmp_path, monkeypatch):
    from drugjax.training import features

    extractions = []
    extract = features.extract_features

    def counting_extract(*a, **k):
        extractions.append(1)
        return extract(*a, **k)
    monkeypatch.setattr(features, "extract_features", counting_extract)
    cache = tmp_path / "cache" / "features"
    train_and_evaluate(_heads_cfg(tmp_path, steps=2), tmp_path / "a", sources=make_sources())
    train_and_evaluate(_heads_cfg(tmp_path, steps=2), tmp_path / "b", sources=make_sources())
    assert len(extractions) == 1 and len(list(cache.glob("features-*.npz"))) == 1
    train_and_evaluate(_heads_cfg(tmp_path, steps=2), tmp_path / "c", sources=make_sources(seed=1))
    assert len(extractions) == 2 and len(list(cache.glob("features-*.npz"))) == 2
    # an unreadable cache file is extracted again, with a warning, never trusted
    for path in cache.glob("features-*.npz"):
        path.write_bytes(b"damaged")
    train_and_evaluate(_heads_cfg(tmp_path, steps=2), tmp_path / "d", sources=make_sources())
    assert len(extractions) == 3


def test_bfloat16_compute_through_the_loop(tmp_path):
    res = train_and_evaluate(tiny_config(**{"model.dtype": "bfloat16", "steps": 4, "eval_every": 4}), tmp_path / "run",
                             sources=make_sources())
    assert res["step"] == 4 and np.isfinite(res["val"]["loss"])
    params = _params(tmp_path / "run")
    assert {np.asarray(a).dtype for a in jax.tree.leaves(params)} == {np.dtype("float32")}  # parameters stay float32


def test_flip_averaged_features_are_the_mean_over_the_mirror_images(tmp_path, monkeypatch):
    import jax.numpy as jnp

    from drugjax.models.tiny import TinyBackbone
    from drugjax.training import features

    sources = make_sources(n_posts=10, n_web=6)
    mirrored = {name: [dict(r, image=r["image"][:, ::-1]) for r in records] for name, records in sources.items()}
    backbone = TinyBackbone()
    variables = backbone.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False)
    kw = dict(names=["posts", "web"], image_size=16, batch_size=4)
    plain = features.extract_features(backbone, variables, sources, **kw)
    flipped = features.extract_features(backbone, variables, mirrored, **kw)
    averaged = features.extract_features(backbone, variables, sources, flip_average=True, **kw)
    for name in ("posts", "web"):
        want = (plain[name]["features"] + flipped[name]["features"]) / 2
        np.testing.assert_allclose(averaged[name]["features"], want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(averaged[name]["features"], plain[name]["features"])
    # flip-averaged features have their own cache entry, and train the heads with input_norm
    extractions = []
    extract = features.extract_features
    monkeypatch.setattr(features, "extract_features", lambda *a, **k: extractions.append(k) or extract(*a, **k))
    train_and_evaluate(_heads_cfg(tmp_path, steps=2), tmp_path / "a", sources=sources)
    res = train_and_evaluate(_heads_cfg(tmp_path, steps=2, **{"model.backbone.flip_average": True,
                                                              "model.input_norm": True}), tmp_path / "b", sources=sources)
    assert [k["flip_average"] for k in extractions] == [False, True]
    assert "input_norm" in read_params(tmp_path / "b")["params"]
    assert res["step"] == 2 and np.isfinite(res["val"]["loss"])


@pytest.mark.parametrize("overrides, message", [
    ({"model.backbone.name": "inception_v1", "model.backbone.pool_layers": ["inception9z"]},
     r"model\.backbone\.pool_layers must be distinct inception block names"),
    ({"model.kind": "end_to_end", "model.backbone.flip_average": True},
     r"model\.backbone\.flip_average averages frozen features \(model\.kind=heads\)"),
])
def test_feature_options_are_checked_before_anything_runs(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(_heads_cfg(tmp_path, **overrides), tmp_path / "run", sources=make_sources())
    assert not (tmp_path / "run").exists()
