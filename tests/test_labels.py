"""Labels through CSV: export the unlabelled posts and accounts, merge filled-in files back;
bad rows listed with file:line and not applied, the rest applied; labels already set kept
unless --relabel; records not relabelled untouched byte for byte."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drugjax.data.__main__ import main as cli
from drugjax.data.labels import LabelFileError, apply_labels, export_unlabelled
from drugjax.data.validate import validate


def post(pid: str, account: str = "alice", drug=None, **kw) -> dict:
    rec = {"id": pid, "account": account, "image": "images/a.png", "caption": f"caption of {pid}",
           "tags": ["xans"], "comments": [], "timestamp": "2016-03-02T00:00:00+00:00", "query": "xans",
           "drug": drug}
    rec.update(kw)
    return rec


def write_jsonl(path: Path, recs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(root / "images" / "a.png")
    write_jsonl(root / "posts.jsonl", [
        post("p1"), post("p2", caption="=HYPERLINK(\"http://evil\")"), post("p3", drug=1), post("-dash"),
    ])
    write_jsonl(root / "accounts.jsonl", [
        {"username": "alice", "bio": "dm to order", "followers": 10, "following": 2, "expert1": None, "expert2": None},
        {"username": "bob", "bio": "", "followers": 5, "following": 5, "expert1": 0, "expert2": 0},
    ])
    write_jsonl(root / "timelines" / "alice.jsonl", [post("p1"), post("t2")])
    return root


def test_export_then_label_round_trip(root, tmp_path):
    posts_csv, accounts_csv = tmp_path / "posts.csv", tmp_path / "accounts.csv"
    counts = export_unlabelled(root, posts_csv=posts_csv, accounts_csv=accounts_csv)
    assert counts == {"unlabelled posts exported": 3, "unlabelled accounts exported": 1}
    rows = list(csv.DictReader(posts_csv.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["p1", "p2", "-dash"]  # p3 is labelled already
    assert list(rows[0])[:2] == ["id", "drug"] and rows[0]["image"] == "images/a.png"
    assert rows[0]["caption"] == "caption of p1" and rows[0]["tags"] == "xans"
    assert rows[1]["caption"].startswith("'=HYPERLINK")  # no formula runs in the annotator's spreadsheet
    (acc,) = list(csv.DictReader(accounts_csv.open(encoding="utf-8")))
    assert acc["username"] == "alice" and acc["bio"] == "dm to order" and acc["timeline_posts"] == "2"

    for r, label in zip(rows, ["1", "0", ""]):
        r["drug"] = label
    write_csv(posts_csv.with_name("done.csv"), list(rows[0]), [list(r.values()) for r in rows])
    write_csv(accounts_csv.with_name("experts.csv"), ["username", "expert1", "expert2"], [["alice", "1", "0"]])
    p3_line = (root / "posts.jsonl").read_text(encoding="utf-8").splitlines()[2]
    report = apply_labels(root, posts_csv=posts_csv.with_name("done.csv"),
                          accounts_csv=accounts_csv.with_name("experts.csv"))
    assert report.problems == []
    # p1 is in posts.jsonl and in alice's timeline: both get the label
    assert report.counts["posts: records labelled"] == 3
    assert report.counts["drug: empty (not judged yet, nothing changed)"] == 1
    posts = {r["id"]: r for r in read_jsonl(root / "posts.jsonl")}
    assert (posts["p1"]["drug"], posts["p2"]["drug"], posts["-dash"]["drug"]) == (1, 0, None)
    assert (root / "posts.jsonl").read_text(encoding="utf-8").splitlines()[2] == p3_line  # untouched
    assert read_jsonl(root / "timelines" / "alice.jsonl")[0]["drug"] == 1
    alice = read_jsonl(root / "accounts.jsonl")[0]
    assert (alice["expert1"], alice["expert2"]) == (1, 0)
    assert validate(root).ok
    assert not list(root.rglob("*.tmp"))


def test_bad_rows_are_listed_and_the_rest_applied(root, tmp_path, capsys):
    labels = write_csv(tmp_path / "labels.csv", ["id", "drug"], [
        ["p1", "1"],        # line 2: good
        ["ghost", "1"],     # line 3: unknown id
        ["p2", "yes"],      # line 4: bad value
        ["t2", "1"],        # line 5 and 6: contradicting rows
        ["t2", "0"],
        ["p3", "0"],        # line 7: already labelled 1
        ["", "1"],          # line 8: no id
    ])
    status = cli(["label", str(root), "--posts", str(labels)])
    out = capsys.readouterr().out
    assert status == 1
    for expected in [
        f"{labels}:3: id: unknown id 'ghost': not in posts",
        f"{labels}:4: drug: unknown label 'yes'; expected 0, 1 or empty (not judged yet)",
        f"{labels}:6: id: 't2' is also on line 5 with another label; neither applied",
        f"{labels}:7: drug: 'p3' is already labelled 1 in posts.jsonl:3; the CSV says 0 (pass --relabel",
        f"{labels}:8: id: empty id",
    ]:
        assert expected in out, (expected, out)
    assert "not applied (5 rows; the others were)" in out
    posts = {r["id"]: r for r in read_jsonl(root / "posts.jsonl")}
    assert posts["p1"]["drug"] == 1 and posts["p2"]["drug"] is None and posts["p3"]["drug"] == 1
    assert read_jsonl(root / "timelines" / "alice.jsonl")[1]["drug"] is None
    # --relabel changes a label that is set, on purpose
    relabel = write_csv(tmp_path / "relabel.csv", ["id", "drug"], [["p3", "0"]])
    assert cli(["label", str(root), "--posts", str(relabel), "--relabel"]) == 0
    assert {r["id"]: r for r in read_jsonl(root / "posts.jsonl")}["p3"]["drug"] == 0


def test_a_csv_that_cannot_be_used_changes_nothing(root, tmp_path, capsys):
    before = {p: p.read_bytes() for p in root.rglob("*.jsonl")}
    good = write_csv(tmp_path / "good.csv", ["id", "drug"], [["p1", "1"]])
    wrong = write_csv(tmp_path / "wrong.csv", ["user", "expert"], [["alice", "1"]])
    assert cli(["label", str(root), "--posts", str(good), "--accounts", str(wrong)]) == 2
    assert "wrong.csv:1: missing column(s) username, expert1, expert2" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in root.rglob("*.jsonl")} == before
    with pytest.raises(LabelFileError, match="no such file"):
        apply_labels(root, posts_csv=tmp_path / "nope.csv")


def test_export_never_overwrites(root, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("my notes")
    with pytest.raises(LabelFileError, match="exists; it is not overwritten"):
        export_unlabelled(root, posts_csv=mine)
    assert mine.read_text() == "my notes"


def test_accounts_partial_labels_and_unknown_usernames(root, tmp_path):
    experts = write_csv(tmp_path / "experts.csv", ["username", "expert1", "expert2"],
                        [["alice", "1", ""], ["carol", "0", "0"], ["bob", "1", "0"]])
    report = apply_labels(root, accounts_csv=experts)
    reasons = [str(p) for p in report.problems]
    assert reasons == [
        f"{experts}:3: username: unknown username 'carol': not in accounts",
        f"{experts}:4: expert1: 'bob' is already labelled 0 in accounts.jsonl:2; the CSV says 1 "
        f"(pass --relabel to change labels already set)",
    ]
    alice, bob = read_jsonl(root / "accounts.jsonl")
    assert (alice["expert1"], alice["expert2"]) == (1, None) and (bob["expert1"], bob["expert2"]) == (0, 0)
