"""evaluate.py part 2: account features, Table 2, Figures 5a-d and the dealer model, after
Table 1 on the tiny world (compose API), and the account protocol on its own."""

import csv
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
from drugjax import evaluate  # noqa: E402  (registers the structured config)

from drugjax.evaluation import account_protocol  # noqa: E402
from drugjax.evaluation.config import to_config  # noqa: E402
from drugjax.text import TextClassifier  # noqa: E402

CONF = str(ROOT / "conf")
TINY = ["data.image_size=16", "model.backbone.name=tiny", "model.hidden=[16,16]", "image.steps=6",
        "data.batch_size=8", "image.chunk_steps=3", "data.eval_batch_size=8"]
FIGURES = ("fig5a_drug_share.png", "fig5b_hours.png", "fig5c_following_ratio.png", "fig5d_evidence.png")


def test_tiny_run_adds_table2_figures_and_the_dealer_model(tmp_path, capsys):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("evaluate", overrides=[*TINY, f"workdir={tmp_path / 'run'}", "data.preset=tiny",
                                             f"data.data_dir={tmp_path / 'cache'}", "dealers.num_folds=2",
                                             "dealers.post_scores=fusion"])
    out = evaluate.run(cfg)
    run = tmp_path / "run"
    printed = capsys.readouterr().out
    assert "| LR-select | exp2 |" in printed and "| 42.9 | 63.6 | 0.51 |" in printed
    assert [(r["method"], r["expert"]) for r in json.loads((run / "table2.json").read_text())["rows"]][:4] == [
        ("LR", "exp1"), ("LR-select", "exp1"), ("LR", "exp2"), ("LR-select", "exp2")]
    for name in FIGURES:
        assert (run / name).stat().st_size > 1000
    card = (run / "model-card.md").read_text()
    assert "## Out of scope" in card and "## This run" in card and "### Table 1" in card
    report = (run / "report.html").read_text()
    assert "Table 1" in report and "LR-select" in report and report.count("data:image/png;base64,") == 7
    rows = list(csv.DictReader((run / "account_features.csv").open()))
    assert len(rows) == 8 == out["accounts"]["counts"]["accounts"]
    # Every timeline post has a picture and text here: all scored by late fusion, as the paper's.
    counts = out["accounts"]["counts"]
    assert counts["timeline_posts_by_fusion"] == counts["timeline_posts"] - counts["timeline_posts_out_of_fold"] > 0
    assert counts["timeline_posts_by_text_only"] == 0 == counts["timeline_posts_by_image_only"]
    assert f"{counts['timeline_posts_by_fusion']} by late fusion of picture and text" in (run / "table2.md").read_text()
    saved = joblib.load(run / "models" / "dealers.joblib")
    assert saved["feature_names"][0] == "P" and saved["model"].predict(np.zeros((1, 9))).shape == (1,)

    # the analysts' step reads this run's models: every account with a timeline is ranked
    from drugjax import detect
    from drugjax.data.builders import synthetic_root

    world = synthetic_root("tiny", 0, 16, tmp_path / "cache")
    assert detect.main([str(world), "--models", str(run), "--out", str(tmp_path / "review")]) == 0
    ranked = list(csv.DictReader((tmp_path / "review" / "review.csv").open()))
    scored = [float(r["score"]) for r in ranked if r["status"] == "scored"]
    assert len(scored) == 8 and scored == sorted(scored, reverse=True)
    page = (tmp_path / "review" / "review.html").read_text()
    assert "Posts are scored by late fusion of picture and text" in page  # detect scores as the run did
    assert "data:image/jpeg;base64," in page and "http://" not in page and "https://" not in page
    assert detect.main([str(world), "--models", str(run), "--out", str(tmp_path / "text"), "--text-only"]) == 0
    assert "the text model alone (--text-only" in (tmp_path / "text" / "review.html").read_text()


def test_too_few_dealers_for_the_folds_skips_table2_with_a_reason(tmp_path):
    # three accounts, one dealer: features and figures, no Table 2
    model = TextClassifier().fit([{"tags": ["lean"], "caption": "drank"}, {"tags": ["food"], "caption": "cake"}], [1, 0])
    (tmp_path / "models").mkdir()
    joblib.dump(model, tmp_path / "models" / "text_combined.joblib")
    (tmp_path / "predictions.csv").write_text("id,late_fusion\nt0,0.9\n")
    post = lambda i, cap: {"id": f"t{i}", "tags": [], "caption": cap, "comments": [],  # noqa: E731
                           "timestamp": "2016-01-01T01:00:00-05:00"}
    accounts = [{"username": f"u{i}", "bio": "hmu", "followers": 10, "following": 5, "expert1": int(i == 0),
                 "expert2": int(i == 0), "timeline": [post(i, "cake")]} for i in range(3)]
    source = [{"json": json.dumps(a)} for a in accounts]
    cfg = to_config({"workdir": str(tmp_path), "dealers": {"post_scores": "text"}})
    out = account_protocol.run(cfg, tmp_path, source)
    assert out["table2"] is None and "exp1 labels 1 of 3" in out["skipped"]
    assert "Table 2 skipped" in (tmp_path / "table2.md").read_text()
    rows = list(csv.DictReader((tmp_path / "account_features.csv").open()))
    assert [r["P"] for r in rows] == ["1", "0", "0"]  # t0: its out-of-fold 0.9, not the text model
    assert rows[0]["evidence"].startswith("bio: hmu")


def test_bad_dealer_settings_fail_at_start_with_the_key():
    from drugjax.evaluation.config import check
    from drugjax.training.config import ConfigError

    for dealers, key in (({"evidence_sources": ["bio", "dms"]}, "dealers.evidence_sources"),
                         ({"l1_c": 0}, "dealers.l1_c"), ({"blacklist": "/no/such.yaml"}, "dealers.blacklist")):
        try:
            check(to_config({"dealers": dealers}))
        except ConfigError as e:
            assert key in str(e)
        else:
            raise AssertionError(f"{dealers} was accepted")


def test_a_timeline_post_without_a_picture_is_scored_by_its_text_and_counted():
    from drugjax.evaluation.protocol import PostModels
    from drugjax.evaluation.timelines import fused_probabilities

    class Models(PostModels):  # the saved models' interface, with known outputs
        def __init__(self):
            self.fusion = {"weight": 0.5}

        def image_probability(self, features, method="mt_mlp"):
            return np.asarray(features)[:, 0]

        def text_probability(self, posts, mode="combined"):
            return np.full(len(posts), 0.2)

    posts = [{"id": "a", "caption": "drank", "tags": []}, {"id": "b", "caption": "no picture", "tags": []},
             {"id": "c", "caption": " ", "tags": []}]
    features = {"a": np.array([0.8, 0.0]), "c": np.array([0.6, 0.0])}
    probability, counts = fused_probabilities(Models(), features, posts)
    assert probability == pytest.approx({"a": 0.5, "b": 0.2, "c": 0.6})  # fused; text alone; picture alone
    assert counts == {"fusion": 1, "text_only": 1, "image_only": 1}


def test_picture_files_that_are_missing_or_do_not_decode_have_no_picture(tmp_path):
    from PIL import Image

    from drugjax.evaluation.timelines import Pictures

    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    posts = [{"id": "a", "image": "good.png"}, {"id": "b", "image": "bad.jpg"}, {"id": "c", "image": "gone.png"},
             {"id": "d", "image": None}]
    pictures = Pictures.of_files(tmp_path, posts)
    assert pictures.ids == ["a"] and pictures[0]["image"] == (tmp_path / "good.png").read_bytes()
    assert Pictures.of_files(tmp_path, posts).identity == pictures.identity  # the same files, the same cache key
