"""evaluate.py: the post-recognition protocol on tiny data through Hydra's compose API
(complete Table 1 and files; predictions out of fold, each post once; folds by account;
the missing-modality rule on a user ROOT), and user errors as one line (in this process, and once
through the real script)."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from train_support import EVALUATE_TINY as TINY, write_root

ROOT = Path(__file__).resolve().parents[1]
from drugjax import evaluate  # noqa: E402  (registers the structured config)

from drugjax.data import load_posts  # noqa: E402
from drugjax.data.builders import synthetic_root  # noqa: E402
from drugjax.evaluation.protocol import Posts, assign_folds, load_models  # noqa: E402
from drugjax.evaluation.tables import TABLE1_METHODS  # noqa: E402

CONF = str(ROOT / "conf")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for the module: the tiny synthetic world is generated once."""
    return tmp_path_factory.mktemp("cache")


def _evaluate(workdir, overrides):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("evaluate", overrides=[*TINY, f"workdir={workdir}", *overrides])
    return evaluate.run(cfg)


def _predictions(workdir):
    with (Path(workdir) / "predictions.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_config_composes_with_the_paper_world_and_the_data_groups():
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("evaluate")
        mine = compose("evaluate", overrides=["data=dir", "data.root=/somewhere", "split=account"])
        with pytest.raises(Exception, match="nosuchkey"):
            compose("evaluate", overrides=["image.nosuchkey=1"])
    assert (cfg.data.kind, cfg.data.preset, cfg.data.num_folds, cfg.split) == ("synthetic", "paper", 5, "post")
    assert (cfg.model.kind, cfg.model.backbone.trainable, cfg.fusion.weight, cfg.threshold) == ("heads", False, 0.5, 0.5)
    assert (mine.data.kind, mine.data.root, mine.data.image_size, mine.split) == ("dir", "/somewhere", 224, "account")
    assert cfg.data.batch_size == mine.data.batch_size == 64


def test_tiny_run_writes_table1_predictions_curves_and_models(tmp_path, cache, capsys):
    out = _evaluate(tmp_path / "run", ["data.preset=tiny", f"data.data_dir={cache}"])
    run = tmp_path / "run"
    printed = capsys.readouterr().out
    assert "| Late fusion |" in printed and "88.1 / 83.1 / 68.1 / 0.75" in printed  # the paper's beside ours

    table = json.loads((run / "table1.json").read_text())
    assert [row["method"] for row in table["rows"]] == list(TABLE1_METHODS)
    for row in table["rows"]:
        for metric in ("accuracy", "precision", "recall", "f1", "auc"):
            assert metric in row["mean"] and metric in row["std"]
        assert row["mean"]["accuracy"] is not None and row["mean"]["auc"] is not None and row["n_folds"] == 5
    with (run / "table1.csv").open(newline="") as f:
        assert [r["method"] for r in csv.DictReader(f)] == list(TABLE1_METHODS)
    assert "## This run" in (run / "table1.md").read_text()
    for name in ("roc.png", "precision_recall.png", "fusion_weights.png"):
        assert (run / name).stat().st_size > 1000
    weights = (run / "fusion_weights.csv").read_text().splitlines()
    assert len(weights) == 1 + 11 and weights[1].startswith("0.0,")
    assert "picked by inner CV" in (run / "fusion_weights.md").read_text()
    assert all(w is not None for w in out["fusion"].selected)

    # Every labelled post exactly once, in exactly one fold; the folds cover the posts.
    world = synthetic_root("tiny", 0, 16, cache)
    assert json.loads((run / "run.json").read_text())["data_root"] == str(world)  # the ROOT, in plain sight
    assert f"(ROOT {world})" in (run / "table1.md").read_text()
    labelled = {p["id"]: p["drug"] for p in load_posts(world).records if p["drug"] is not None}
    rows = _predictions(run)
    assert sorted(r["id"] for r in rows) == sorted(labelled)
    assert {r["id"]: int(r["label"]) for r in rows} == labelled
    assert sorted({int(r["fold"]) for r in rows}) == [0, 1, 2, 3, 4]
    for r in rows:
        for column in ("mlp", "mt_mlp", "tags", "caption", "combined", "late_fusion"):
            assert 0.0 <= float(r[column]) <= 1.0
        fused = 0.5 * float(r["mt_mlp"]) + 0.5 * float(r["combined"])
        assert float(r["late_fusion"]) == pytest.approx(fused, abs=2e-6)

    # The saved models load and score, as a later stage would use them.
    models = load_models(run / "models")
    assert models.fusion["weight"] == 0.5 and models.fusion["backbone"]["name"] == "tiny"
    features = np.zeros((2, models.fusion["heads"]["features_dim"]), np.float32)
    posts = [{"tags": ["lean"], "caption": "got that drank"}, {"tags": [], "caption": "leg day"}]
    fused = models.probability(features, posts)
    assert fused.shape == (2,) and np.all((fused >= 0) & (fused <= 1))


def test_same_seed_same_folds_and_account_split_keeps_accounts_together():
    rng = np.random.default_rng(0)
    accounts = [f"a{i % 13}" for i in range(80)]
    labels = (rng.random(80) < 0.3).astype(int)
    posts = Posts(np.arange(80), [f"p{i}" for i in range(80)], accounts, [{"tags": [], "caption": ""}] * 80,
                  labels, np.zeros(80, bool))
    by_post = assign_folds(posts, "post", 5, seed=3)
    assert np.array_equal(by_post, assign_folds(posts, "post", 5, seed=3))
    by_account = assign_folds(posts, "account", 5, seed=3)
    assert np.array_equal(by_account, assign_folds(posts, "account", 5, seed=3))
    assert all(len(set(by_account[np.asarray(accounts) == a])) == 1 for a in set(accounts))


def test_no_training_sees_the_posts_of_its_held_out_folds():
    from drugjax.evaluation.protocol import CrossValidationTable, held_out_codes
    from drugjax.training.config import OptimConfig
    from drugjax.training.sweep import HeadConfig, Schedule, train_sweep

    rng = np.random.default_rng(0)
    folds = np.concatenate([np.arange(40) % 4, np.full(12, -1)]).astype(np.int32)
    kinds = np.concatenate([np.arange(40) % 2, 2 + np.arange(12) % 4]).astype(np.int32)
    features = rng.normal(size=(52, 8)).astype(np.float32)
    features[folds == 0] = np.nan  # a training step that sees one of these posts has a NaN loss
    codes = held_out_codes(4, pairs=True)
    assert codes[0] == (0,) and codes[4] == (0, 1) and codes[len(codes) - 1] == ()
    table = CrossValidationTable(features, kinds, folds, held_out=codes)
    configs = [HeadConfig(fold=code, hidden=(8,)) for code in codes]
    results = train_sweep(table, configs, Schedule(steps=8, batch_size=8, optim=OptimConfig(warmup_steps=2)))
    for code, result in zip(codes, results):
        assert np.isfinite(result["loss"]).all() == (0 in codes[code]), codes[code]
    assert set(folds[table.validation_rows(4)]) == {0, 1} and -1 in set(folds[table.training_rows(4)])


def test_split_by_account_keeps_every_account_in_one_fold(tmp_path, cache):
    _evaluate(tmp_path / "run", ["data.preset=tiny", f"data.data_dir={cache}", "split=account"])
    folds_of = {}
    for r in _predictions(tmp_path / "run"):
        folds_of.setdefault(r["account"], set()).add(r["fold"])
    assert len(folds_of) >= 5 and all(len(f) == 1 for f in folds_of.values())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["split"] == "account"


def test_user_root_post_without_image_is_scored_by_text_and_without_text_by_image(tmp_path):
    root = write_root(tmp_path / "root", n_posts=40)
    lines = [json.loads(line) for line in (root / "posts.jsonl").read_text().splitlines()]
    for i, post in enumerate(lines):
        post["caption"] = ("dm for lean and bars" if post["drug"] else "leg day with friends") + f" {i % 3}"
    lines[0]["image"] = None  # no image: scored by its text alone
    lines[1]["caption"], lines[1]["tags"] = "", []  # no text: scored by its image alone
    (root / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in lines))
    _evaluate(tmp_path / "run", ["data=dir", f"data.root={root}", f"data.data_dir={tmp_path / 'cache'}",
                                 "name=mine"])
    rows = {r["id"]: r for r in _predictions(tmp_path / "run")}
    assert len(rows) == 40
    no_image, no_text = rows[lines[0]["id"]], rows[lines[1]["id"]]
    assert no_image["has_image"] == "0" and no_image["mlp"] == "" and no_image["mt_mlp"] == ""
    assert float(no_image["late_fusion"]) == pytest.approx(float(no_image["combined"]), abs=2e-6)
    assert no_text["has_text"] == "0" and float(no_text["late_fusion"]) == pytest.approx(float(no_text["mt_mlp"]), abs=2e-6)
    table = json.loads((tmp_path / "run" / "table1.json").read_text())
    notes = {row["method"]: " ".join(row["notes"]) for row in table["rows"]}
    assert "1 post(s) scored by text alone (no usable image), 1 by image alone (no text)" in notes["Late fusion"]
    assert "1 post(s) without a usable image" in notes["MT MLP"]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["counts"]["without_image"] == 1 and run["counts"]["without_text"] == 1
    assert not math.isnan(table["rows"][0]["mean"]["accuracy"])


@pytest.mark.parametrize("override, message", [
    ("data=dir", "data.root is required with data=dir: python evaluate.py data=dir data.root=PATH"),
    ("split=fold", "split must be one of ['post', 'account']"),
    ("fusion.weight=1.5", "fusion.weight and fusion.weights must lie in [0, 1]"),
    ("model.backbone.weights=missing.npz", "model.backbone.weights=missing.npz: no such file"),
    ("dealers.selection=fold", "dealers.selection must be nested or holdout"),
    ("dealers.holdout_fraction=1.5", "dealers.holdout_fraction must lie between 0 and 1"),
])
def test_bad_config_is_one_error_line_and_exit_1(tmp_path, override, message, call_main):
    refused = call_main(evaluate.main, override, f"workdir={tmp_path / 'run'}", f"data.data_dir={tmp_path / 'cache'}",
                        cwd=tmp_path)
    assert refused.code == 1
    assert refused.err.strip().splitlines() == [f"error: {refused.err.strip()[len('error: '):]}"]
    assert message in refused.err and "Traceback" not in refused.err + refused.out
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_a_mistyped_key_is_one_error_line_naming_the_nearest_key(tmp_path, call_main):
    refused = call_main(evaluate.main, "fusion.wieght=0.3", f"workdir={tmp_path / 'run'}", cwd=tmp_path)
    assert refused.code == 2 and refused.err.count("\n") == 1
    assert refused.err.startswith("error: fusion.wieght=0.3: ") and "did you mean fusion.weight?" in refused.err


def test_evaluate_py_as_a_script_refuses_in_one_line(tmp_path):
    # The one real evaluate.py process of the suite: the script, its re-exec and its exit.
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "data=dir", f"workdir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: data.root is required with data=dir: python evaluate.py data=dir data.root=PATH"
    assert not (tmp_path / "run").exists()
