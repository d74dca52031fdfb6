"""drugjax.detect: a hand-made ROOT and run directory -> ranked review list with evidence,
escaped text, 'needs timeline', candidate tags, and pseudonymisation in every output."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image

from drugjax import detect
from drugjax.accounts import FEATURE_NAMES
from drugjax.evaluation.dealers import classifier
from drugjax.text import TextClassifier

DRUG = "fresh xanax bars dm to order"


def _post(pid, account, caption, tags, hour=1, image=None, comments=()):
    return {"id": pid, "account": account, "image": image, "caption": caption, "tags": tags,
            "comments": list(comments), "timestamp": f"2016-03-01T{hour:02d}:00:00-05:00", "query": "", "drug": None}


def _write_jsonl(path: Path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def world(tmp_path):
    root, run = tmp_path / "root", tmp_path / "run"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (40, 30), (120, 40, 160)).save(root / "images" / "p.png")
    posts = [_post("s1", "kingplug", "<script>alert(1)</script> bars 4 sale @kingplug", ["xanax", "pharmlife"],
                   image="images/p.png"),
             _post("s2", "kingplug", DRUG, ["bars", "pharmlife"]),
             _post("s3", "gymjane", "leg day", ["lean", "fitfam"]),
             _post("s4", "nosy_notimeline", DRUG + " ask @kingplug", ["xanax", "pharmlife"]),
             _post("s5", "other", "sunset", ["beach"])]  # no dictionary tag: not considered
    for p in posts:
        p["drug"] = 0
    _write_jsonl(root / "posts.jsonl", posts)
    accounts = [{"username": "kingplug", "bio": "menu in dm 🔌 kingplug on wickr", "followers": 5000, "following": 20,
                 "expert1": None, "expert2": None},
                {"username": "gymjane", "bio": "coach", "followers": 300, "following": 400, "expert1": None,
                 "expert2": None}]
    _write_jsonl(root / "accounts.jsonl", accounts)
    _write_jsonl(root / "timelines" / "kingplug.jsonl",
                 [_post(f"t-kingplug-{i}", "kingplug", DRUG, ["xanax"], comments=["need a plug @gymjane"])
                  for i in range(4)] + [_post("t-kingplug-9", "kingplug", "cat pic", ["cats"], hour=14)])
    _write_jsonl(root / "timelines" / "gymjane.jsonl",
                 [_post(f"t-gymjane-{i}", "gymjane", "protein shake leg day", ["fitfam"], hour=9) for i in range(4)])
    # the run directory: a text model, a dealer model, the fusion settings
    text = TextClassifier().fit([{"tags": ["xanax"], "caption": DRUG}, {"tags": ["bars"], "caption": "bars 4 sale"},
                                 {"tags": ["fitfam"], "caption": "leg day"}, {"tags": ["beach"], "caption": "sunset"}],
                                [1, 1, 0, 0])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 9))
    y = (x[:, 0] + x[:, 8] > 1).astype(int)  # P and E decide
    (run / "models").mkdir(parents=True)
    joblib.dump(text, run / "models" / "text_combined.joblib")
    joblib.dump({"model": classifier("LR").fit(x, y), "feature_names": list(FEATURE_NAMES), "expert": "exp1",
                 "threshold": 0.5, "log_counts": True, "blacklist": None, "evidence_sources": ["bio", "comment"],
                 "kept": list(FEATURE_NAMES)}, run / "models" / "dealers.joblib")
    (run / "models" / "fusion.json").write_text(json.dumps({"threshold": 0.5, "weight": 0.5}))
    return root, run, tmp_path


def test_review_ranks_accounts_with_evidence_and_escapes_text(world, capsys):
    root, run, tmp = world
    with (root / "posts.jsonl").open("a") as f:
        f.write('{"id": "broken"}\n')  # fails validation: left out and counted
    # The hand-made run has a text model only: --text-only (the fused path: test_evaluate_accounts).
    assert detect.main([str(root), "--models", str(run), "--out", str(tmp / "out"), "--text-only"]) == 0
    printed = capsys.readouterr().out
    assert "1 records of ROOT failed validation" in printed and "posts scored by the text model alone" in printed
    rows = (tmp / "out" / "review.csv").read_text(encoding="utf-8").splitlines()
    ranked = [r.split(",")[1:3] for r in rows[1:]]
    assert ranked == [["kingplug", "scored"], ["gymjane", "scored"], ["nosy_notimeline", "needs timeline"]]
    page = (tmp / "out" / "review.html").read_text(encoding="utf-8")
    assert "not a verdict" in page and "the text model alone" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "data:image/jpeg;base64," in page and "http://" not in page and "https://" not in page
    assert "wickr" in page and "dm to order" in page  # evidence with its context
    # Accounts without a timeline: one row of a compact table, not a section with pictures.
    assert "<h2>Accounts to download before they can be scored</h2>" in page
    assert "<tr><td>nosy_notimeline</td>" in page and "<section><h2>3." not in page
    assert "-0.00" not in page
    tags = (tmp / "out" / "candidate_tags.csv").read_text().splitlines()
    assert tags[1].startswith("pharmlife,")  # co-occurs with dictionary tags on drug-scored posts


def test_pseudonymisation_leaves_no_real_handle_in_any_output(world):
    root, run, tmp = world
    key = tmp / "keys" / "review.key"
    assert detect.main([str(root), "--models", str(run), "--out", str(tmp / "out"), "--pseudonymize", str(key),
                        "--text-only"]) == 0
    for path in (tmp / "out").iterdir():
        text = path.read_text(encoding="utf-8").lower()
        for handle in ("kingplug", "gymjane", "nosy_notimeline"):
            assert handle not in text, (path.name, handle)
    assert detect.main([str(root), "--models", str(run), "--out", str(tmp / "o2"), "--pseudonymize",
                        str(root / "k"), "--text-only"]) == 1  # a key inside ROOT is refused


def test_missing_models_is_one_clear_error(world, capsys):
    root, _, tmp = world
    assert detect.main([str(root), "--models", str(tmp / "nowhere"), "--out", str(tmp / "out")]) == 1
    assert "--models takes an evaluate.py run directory" in capsys.readouterr().err


def test_evidence_is_grouped_per_post_with_each_term_and_text_once():
    from drugjax.accounts import Evidence

    comment = "need a plug dm me on wickr"
    evidence = [Evidence("comment", "p1", "plug", comment), Evidence("comment", "p1", "wickr", comment),
                Evidence("comment", "p1", "plug", "plug again"), Evidence("bio", None, "wickr", "on wickr"),
                Evidence("comment", "p2", "plug", comment)]
    groups = detect.grouped_evidence(evidence)
    assert [(g["source"], g["post_id"]) for g in groups] == [("comment", "p1"), ("bio", None), ("comment", "p2")]
    assert groups[0]["terms"] == ["plug", "wickr"] and groups[0]["contexts"] == [comment, "plug again"]


def test_contributions_that_round_to_zero_have_no_sign():
    assert [detect.signed(v) for v in (-0.004, 0.004, 0.0, -0.006, 1.234)] == ["0.00", "0.00", "0.00", "-0.01", "+1.23"]
