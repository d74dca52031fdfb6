"""The pretext set, the pre-training through train.py's loop, and the stand-in backbone
shipped in the package (drugjax/weights/): its file, sha256, provenance and defaults."""

import json
import re
import shutil

import jax
import numpy as np
import pytest
from train_support import tiny_config

from drugjax.synthetic import draw
from drugjax.synthetic import pretext
from drugjax.models import standin
from drugjax.models.weights import WeightsError
from drugjax.training import build
from drugjax.training.config import ConfigError
from drugjax.training.inputs import PretextLoader
from drugjax.training.checkpoint import read_params
from drugjax.training.export import export
from drugjax.training.loop import train_and_evaluate


# --------------------------------------------------------------------------- the pretext set
def test_pretext_classes_are_everyday_things_and_no_drug():
    assert len(pretext.CLASS_NAMES) >= 50
    drug_words = re.compile(r"weed|cannabis|marijuana|bud|joint|blunt|pill|xanax|perc|lean|syrup|codeine|vitamin|purple")
    assert not [name for name in pretext.CLASS_NAMES if drug_words.search(name)]
    # None of the world's drug drawers, nor its confusers of drugs, is a pretext class.
    world_drawers = {id(draw._DRAWERS[c]) for c in draw.DRUG_CONTENTS + ("vitamins", "purple_drink", "green_food")}
    assert not world_drawers & {id(f) for f in pretext.CLASSES.values()}


def test_pretext_images_are_deterministic_and_differ_by_split_and_seed():
    a = pretext.render(3, "train", 5, seed=0, size=32)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, pretext.render(3, "train", 5, seed=0, size=32))
    assert not np.array_equal(a, pretext.render(3, "val", 5, seed=0, size=32))
    assert not np.array_equal(a, pretext.render(3, "train", 5, seed=1, size=32))


def test_pretext_cache_is_reused(tmp_path):
    images, labels = pretext.load("val", per_class=1, seed=0, size=16, cache_dir=tmp_path)
    assert images.shape == (len(pretext.CLASS_NAMES), 16, 16, 3)
    np.testing.assert_array_equal(labels, np.arange(len(pretext.CLASS_NAMES)))
    cached = list(tmp_path.glob("*.npy"))
    assert len(cached) == 1
    again, _ = pretext.load("val", per_class=1, seed=0, size=16, cache_dir=tmp_path)
    np.testing.assert_array_equal(images, again)


def test_pretext_loader_resumes_on_the_next_batch():
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(40) % 7
    make = lambda: PretextLoader(images, labels, per_device_batch=4, num_devices=2, seed=1, augment=True)  # noqa: E731
    loader = make()
    for _ in range(7):
        next(loader)
    state = loader.get_state()
    expected = next(loader)
    resumed = make()
    resumed.set_state(state)
    got = next(resumed)
    for key in ("x", "kind", "valid"):
        np.testing.assert_array_equal(expected[key], got[key])
    assert expected["x"].shape == (2, 4, 8, 8, 3) and expected["x"].dtype == np.float32


# --------------------------------------------------------------------------- the shipped stand-in
def test_the_shipped_stand_in_matches_its_sha256_and_provenance():
    info = standin.provenance()
    assert info["command"] == "python train.py experiment=pretrain"
    assert info["transform_input"] is False and "ImageNet mean" in info["normalisation"]
    assert info["pretext_val_accuracy"] > 5 * info["most_common_class_accuracy"]
    assert standin.WEIGHTS_FILE.stat().st_size <= 15e6
    variables = standin.load()
    backbone = build.make_backbone(tiny_config(**{"model.backbone.name": "inception_v1",
                                                  "model.backbone.weights": "none"}), np.float32, training=False)
    # The tree of the backbone the feature extractor builds (shapes only: nothing compiled).
    reference = jax.eval_shape(lambda: build.backbone_variables(backbone, None, jax.random.PRNGKey(0), 64))
    assert jax.tree.structure(variables) == jax.tree.structure(dict(reference))
    for got, want in zip(jax.tree.leaves(variables), jax.tree.leaves(dict(reference))):
        assert got.shape == want.shape
    assert all(np.asarray(leaf).dtype == np.float32 for leaf in jax.tree.leaves(variables))


def test_a_damaged_copy_fails_with_one_clear_error(tmp_path):
    weights, record = tmp_path / "w.npz", tmp_path / "w.json"
    shutil.copy(standin.WEIGHTS_FILE, weights)
    shutil.copy(standin.PROVENANCE_FILE, record)
    standin.provenance(weights, record)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 .* differs .* damaged or was replaced"):
        standin.load(weights, record)
    weights.unlink()
    with pytest.raises(WeightsError, match="not installed"):
        standin.provenance(weights, record)


def test_the_default_is_the_stand_in_on_the_synthetic_world_and_none_on_your_data(tmp_path):
    inception = {"model.backbone.name": "inception_v1"}
    synthetic = build.resolve_weights(tiny_config(**inception))
    assert synthetic.choice == "synthetic" and synthetic.path == standin.WEIGHTS_FILE
    assert synthetic.transform_input is False  # from the provenance, not "weights given -> True"
    assert "not ImageNet" in synthetic.describe()
    own = build.resolve_weights(tiny_config(**inception, **{"data.kind": "dir", "data.root": str(tmp_path)}))
    assert own.choice == "none" and "random initialisation" in own.describe()
    chosen = build.resolve_weights(tiny_config(**inception, **{"data.kind": "dir", "data.root": str(tmp_path),
                                                              "model.backbone.weights": "synthetic"}))
    assert chosen.choice == "synthetic"
    assert build.resolve_weights(tiny_config()).choice == "none"  # the tiny test backbone
    torchvision_file = tmp_path / "googlenet.npz"
    shutil.copy(standin.WEIGHTS_FILE, torchvision_file)
    as_file = build.resolve_weights(tiny_config(**inception, **{"model.backbone.weights": str(torchvision_file)}))
    assert as_file.choice == "file" and as_file.transform_input is True
    with pytest.raises(ConfigError, match="init_from"):
        build.resolve_weights(tiny_config(**inception, **{"model.backbone.weights": str(tmp_path)}))
    with pytest.raises(ConfigError, match="no such file.*'synthetic'"):
        build.resolve_weights(tiny_config(**inception, **{"model.backbone.weights": str(tmp_path / "nope.npz")}))


def test_stand_in_features_separate_drug_pictures_better_than_a_random_backbone():
    """World pictures of drugs against their confusers and everyday scenes (drawn from a
    stream of this test's own), a logistic regression on frozen features, 4-fold AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.metrics import roc_auc_score

    from drugjax.data.augment import normalize
    from drugjax.models import InceptionV1

    contents = draw.DRUG_CONTENTS * 8 + (draw.CONFUSER_CONTENTS + draw.GENERIC_CONTENTS) * 4
    labels = np.array([c in draw.DRUG_CONTENTS for c in contents], int)
    images = normalize(np.stack([draw.render(c, "instagram", 64, (99, 17, i), clutter=0.3)
                                 for i, c in enumerate(contents)]))
    model = InceptionV1(num_classes=None, transform_input=False)
    extract = jax.jit(lambda variables, x: model.apply(variables, x, train=False))
    random_variables = jax.jit(lambda k: model.init(k, images[:1], train=False))(jax.random.PRNGKey(0))
    auc = {}
    for name, variables in (("random", random_variables), ("stand-in", standin.load())):
        features = np.asarray(extract(variables, images))
        features = (features - features.mean(0)) / (features.std(0) + 1e-6)
        scores = cross_val_predict(LogisticRegression(C=0.1, max_iter=2000), features, labels, cv=4,
                                   method="predict_proba")[:, 1]
        auc[name] = roc_auc_score(labels, scores)
    assert auc["stand-in"] > auc["random"] + 0.1, auc


# --------------------------------------------------------------------------- pre-training and export
@pytest.mark.slow  # Inception-v1 compiled for a classifier; test_train_inception runs it through the loop
def test_pretraining_runs_through_the_loop_and_exports_a_verified_backbone(tmp_path):
    cfg = tiny_config(**{
        "model.kind": "classifier", "model.backbone.name": "inception_v1", "model.backbone.weights": "none",
        "model.backbone.transform_input": False, "data.kind": "pretext", "data.sources": [],
        "data.image_size": 64, "data.pretext_per_class": 1, "data.pretext_val_per_class": 1,
        "data.data_dir": str(tmp_path / "data"), "data.batch_size": 8, "data.eval_batch_size": 16,
        "steps": 2, "eval_every": 2, "checkpoint_every": 2, "best_metric": "accuracy", "objective": "accuracy",
    })
    run = tmp_path / "pretrain"
    results = train_and_evaluate(cfg, run)
    assert results["step"] == 2 and set(results["val"]) >= {"accuracy", "top5_accuracy", "majority_accuracy"}
    assert results["data"]["pretext_train"]["classes"] == len(pretext.CLASS_NAMES)
    weights, record = tmp_path / "standin.npz", tmp_path / "standin.json"
    info = export(run, weights, record, commit="abc")
    assert info["sha256"] == standin.provenance(weights, record)["sha256"]
    assert info["transform_input"] is False and info["steps"] == 2 and info["commit"] == "abc"
    first = weights.read_bytes()
    export(run, weights, record, commit="abc")
    assert weights.read_bytes() == first  # the same weights, the same bytes (and sha256)
    loaded = standin.load(weights, record)
    trained = read_params(run)
    for got, want in zip(jax.tree.leaves(loaded["params"]), jax.tree.leaves(dict(trained["params"]["backbone"]))):
        np.testing.assert_allclose(got, np.asarray(want, np.float16).astype(np.float32))
    results_json = json.loads((run / "results.json").read_text())
    results_json["interrupted"], results_json["step"] = True, 1
    (run / "results.json").write_text(json.dumps(results_json))
    with pytest.raises(WeightsError, match="stopped at step 1 of 2"):
        export(run, weights, record)


def test_export_command_line_refuses_what_is_not_a_finished_pretext_run(tmp_path, capsys):
    from drugjax.training import export as export_module

    assert export_module.main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no results.json; finish the run first" in err and err.count("\n") == 1
    heads_run = tmp_path / "heads"
    heads_run.mkdir()
    (heads_run / "results.json").write_text(json.dumps({"config": {"model": {"kind": "heads"},
                                                                   "data": {"kind": "synthetic"}}}))
    assert export_module.main([str(heads_run)]) == 2
    assert "not a pretext run (model.kind=heads)" in capsys.readouterr().err


def test_export_records_the_commit_of_the_checkout():
    from drugjax.training.export import _git_commit

    commit = _git_commit()  # None outside a git checkout (an installed wheel)
    assert commit is None or (len(commit.split("+")[0]) == 40 and all(c in "0123456789abcdef" for c in commit[:40]))
