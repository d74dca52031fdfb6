"""A train.py run as evaluate.py's backbone: train.py's record of the posts it trained on
(training_posts.json, with init_from's union), and evaluate.py refusing a checkpoint that
saw a post it scores, or one of unknown provenance, before any feature is extracted."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from train_support import EVALUATE_TINY as TINY, make_sources, tiny_config

ROOT = Path(__file__).resolve().parents[1]
from drugjax import evaluate  # noqa: E402  (registers the structured config)

from drugjax.data import pipeline  # noqa: E402
from drugjax.evaluation.leakage import LeakageError  # noqa: E402
from drugjax.training import features as features_lib  # noqa: E402
from drugjax.training import provenance  # noqa: E402
from drugjax.training.checkpoint import Checkpoints, read_params  # noqa: E402
from drugjax.training.config import ConfigError  # noqa: E402
from drugjax.training.loop import train_and_evaluate  # noqa: E402

CONF = str(ROOT / "conf")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for the module: the tiny synthetic world is built once."""
    return tmp_path_factory.mktemp("cache")


def _train_on(workdir, sources=None, **overrides):
    return train_and_evaluate(tiny_config(steps=2, eval_every=2, checkpoint_every=2, **overrides), workdir,
                              sources=sources)


def _world(cache, **overrides):
    # The tiny synthetic world evaluate.py scores (preset tiny, seed 0, 16 px).
    return {"data.preset": "tiny", "data.data_dir": str(cache), **overrides}


def _evaluate(workdir, overrides):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("evaluate", overrides=[*TINY, f"workdir={workdir}", *overrides])
    return evaluate.run(cfg)


def _usable_ids(source, folds):
    return sorted(provenance.post_ids(source, pipeline.select(source, folds)))


def test_record_lists_the_training_posts_before_the_first_checkpoint_and_unions_init_from(tmp_path, monkeypatch):
    sources = make_sources()
    seen_at_first_save = []
    save = Checkpoints.save

    def save_and_look(self, step, *a, **k):
        seen_at_first_save.append((tmp_path / "a" / provenance.RECORD).is_file())
        return save(self, step, *a, **k)
    monkeypatch.setattr(Checkpoints, "save", save_and_look)
    _train_on(tmp_path / "a", sources)
    assert seen_at_first_save and seen_at_first_save[0]
    monkeypatch.undo()

    a = json.loads((tmp_path / "a" / provenance.RECORD).read_text())
    assert a["complete"] and a["unrecorded"] == [] and len(a["trained_on"]) == 1
    own = a["trained_on"][0]
    # The usable posts (image and label) of the training folds 1-4; fold 0 validates.
    assert own["posts"] == _usable_ids(sources["posts"], [1, 2, 3, 4]) and "p0" not in own["posts"]
    assert own["posts"] == sorted(p["id"] for p in sources["posts"] if p["fold"] != 0)
    assert (own["train_folds"], own["val_fold"], own["web_images"]) == ([1, 2, 3, 4], 0, 24)
    assert own["validation_posts"] == 8 and own["world"] == {"source": "memory"} and own["run"] == str(tmp_path / "a")

    # Web images only, warm-started from a: its own posts are none, a's come with it.
    _train_on(tmp_path / "b", sources, **{"data.sources": ["web"], "init_from": str(tmp_path / "a")})
    b = json.loads((tmp_path / "b" / provenance.RECORD).read_text())
    assert b["complete"] and [e["run"] for e in b["trained_on"]] == [str(tmp_path / "b"), str(tmp_path / "a")]
    assert b["trained_on"][0]["posts"] == [] and b["trained_on"][0]["sources"] == ["web"]
    assert b["trained_on"][1]["posts"] == own["posts"]
    assert b["trained_on"][1]["via"] == f"init_from of {tmp_path / 'b'}"
    assert provenance.overlap(b, {"source": "memory"}, ["p1", "p0", "x"]) == {"p1"}

    # From a run without a record (an older train.py): the union is unknown, and says so.
    (tmp_path / "b" / provenance.RECORD).unlink()
    _train_on(tmp_path / "c", sources, **{"data.sources": ["web"], "init_from": str(tmp_path / "b" / "checkpoints")})
    c = json.loads((tmp_path / "c" / provenance.RECORD).read_text())
    assert not c["complete"] and len(c["trained_on"]) == 1
    assert c["unrecorded"] == [f"{tmp_path / 'b'} (init_from of {tmp_path / 'c'}) has no training_posts.json: "
                               "what it trained on is unknown"]


def test_synthetic_worlds_are_told_apart_other_data_is_compared_by_id():
    world = {"source": "synthetic", "preset": "tiny", "seed": 0, "generator_version": 4, "knobs": {}}
    record = {"trained_on": [{"world": world, "posts": ["p000001", "p000002"]}]}
    assert provenance.overlap(record, world, ["p000001", "p000009"]) == {"p000001"}
    assert provenance.overlap(record, dict(world, seed=1), ["p000001"]) == set()  # another world, same ids
    assert provenance.overlap(record, dict(world, generator_version=5), ["p000001"]) == set()
    # A ROOT (real posts, Instagram's ids), even a copy of a synthetic world: by id.
    assert provenance.overlap(record, {"source": "root", "root": "/x", "fingerprint": "f"}, ["p000002"]) == {"p000002"}


def test_a_heads_run_has_no_backbone_to_evaluate_with(tmp_path):
    _train_on(tmp_path / "heads", make_sources(), **{"model.kind": "heads", "data.data_dir": str(tmp_path / "cache")})
    assert json.loads((tmp_path / "heads" / provenance.RECORD).read_text())["trained_on"][0]["posts"]
    with pytest.raises(ConfigError, match="trained heads on frozen features.*holds no backbone"):
        provenance.backbone_checkpoint(tmp_path / "heads")
    with pytest.raises(ConfigError, match="a directory with no train.py checkpoint"):
        provenance.backbone_checkpoint(tmp_path / "cache")


def test_a_train_py_run_is_refused_as_train_py_backbone_weights(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    from drugjax.training.build import load_backbone_weights

    cfg = tiny_config(**{"model.backbone.name": "inception_v1", "model.backbone.weights": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="is a directory; train.py takes a weights file.*init_from="):
        load_backbone_weights(cfg)


def test_evaluate_refuses_a_backbone_trained_on_the_posts_it_scores(tmp_path, cache, monkeypatch):
    _train_on(tmp_path / "ft", **_world(cache))
    record = json.loads((tmp_path / "ft" / provenance.RECORD).read_text())
    trained = len(record["trained_on"][0]["posts"])
    assert trained > 0 and record["trained_on"][0]["world"]["source"] == "synthetic"

    def no_extraction(*a, **k):
        raise AssertionError("features extracted before the leakage check")
    monkeypatch.setattr(features_lib, "extract_features", no_extraction)
    with pytest.raises(LeakageError) as e:
        _evaluate(tmp_path / "eval", [f"data.data_dir={cache}", "data.preset=tiny",
                                      f"model.backbone.weights={tmp_path / 'ft'}"])
    message = str(e.value)
    assert f"model.backbone.weights={tmp_path / 'ft'}: {tmp_path / 'ft'} trained on {trained} of the " in message
    assert "in 5 of its 5 folds (0, 1, 2, 3, 4)" in message and "data.sources=[web]" in message
    assert "\n" not in message and not (tmp_path / "eval" / "table1.md").exists()

    # Without a record: unknown provenance, refused too.
    (tmp_path / "ft" / provenance.RECORD).unlink()
    with pytest.raises(LeakageError, match="has no training_posts.json, so which posts it trained on is unknown"):
        _evaluate(tmp_path / "eval", [f"data.data_dir={cache}", "data.preset=tiny",
                                      f"model.backbone.weights={tmp_path / 'ft' / 'checkpoints'}"])


def test_evaluate_uses_a_web_only_checkpoint_as_its_backbone(tmp_path, cache, monkeypatch):
    _train_on(tmp_path / "web", **_world(cache, **{"data.sources": ["web"]}))
    used = []
    extract = features_lib.extract_features

    def capture(backbone, variables, *a, **k):
        used.append(variables)
        return extract(backbone, variables, *a, **k)
    monkeypatch.setattr(features_lib, "extract_features", capture)
    _evaluate(tmp_path / "eval", [f"data.data_dir={cache}", "data.preset=tiny",
                                  f"model.backbone.weights={tmp_path / 'web'}"])
    assert (tmp_path / "eval" / "table1.md").is_file() and len(used) == 1
    saved = read_params(tmp_path / "web")  # the latest checkpoint
    expected = {"params": saved["params"]["backbone"], "batch_stats": saved["batch_stats"]["backbone"]}
    assert jax.tree.structure(used[0]) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(used[0]), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fusion = json.loads((tmp_path / "eval" / "models" / "fusion.json").read_text())
    step = provenance.step_directory(tmp_path / "web")
    assert fusion["backbone"]["checkpoint"] == str(step) and fusion["backbone"]["weights"] == str(tmp_path / "web")
    meta = json.loads((step / "meta" / "metadata").read_text())
    assert fusion["backbone"]["weights_sha256"] == meta["state_sha256"] and fusion["backbone"]["transform_input"] is False


def test_overlap_is_one_error_line_and_exit_2(tmp_path, cache, call_main):
    _train_on(tmp_path / "ft", **_world(cache))
    refused = call_main(evaluate.main, *TINY, "data.preset=tiny", f"data.data_dir={cache}",
                        f"model.backbone.weights={tmp_path / 'ft'}", f"workdir={tmp_path / 'eval'}", cwd=tmp_path)
    assert refused.code == 2, refused.err
    lines = refused.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: model.backbone.weights={tmp_path / 'ft'}: ")
    assert "posts this evaluation scores" in lines[0] and "Traceback" not in refused.err + refused.out
