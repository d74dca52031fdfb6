"""``python -m drugjax.data validate``: a folder with every bad-input kind lists each with
its reason, exits 1 and loses no good record; a clean folder exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_schema import account, bomb_png, png_bytes, post, write_jsonl

from drugjax.data.__main__ import main
from drugjax.data.validate import validate


def build_bad_root(root: Path, outside: Path) -> tuple[dict[str, int], list[str]]:
    """A ROOT with good records interleaved with one of every bad kind.

    Returns the good record count per file and the expected rejection lines.
    """
    img = root / "images"
    img.mkdir(parents=True)
    (img / "ok.png").write_bytes(png_bytes())
    (img / "gray.png").write_bytes(png_bytes(mode="L"))  # converted, not rejected
    (img / "empty.png").write_bytes(b"")
    (img / "text.png").write_bytes(b"not a picture")
    (img / "trunc.png").write_bytes(png_bytes()[:300])
    (img / "bomb.png").write_bytes(bomb_png(9000, 9000))
    (outside / "secret.png").write_bytes(png_bytes())
    os.symlink(outside / "secret.png", img / "link.png")

    posts = [
        post(1),                                            # 1 good
        '{"id": "p2", ',                                    # 2 invalid JSON
        {k: v for k, v in post(3).items() if k != "tags"},  # 3 missing field
        post(4, comments="nice"),                           # 4 wrong type
        post(5, drug=7),                                    # 5 unknown label
        post(1, caption="dup"),                             # 6 duplicate id
        post(7, timestamp="2016-03-01 23:45:00"),           # 7 good: no offset -> UTC, counted
        post(8, image="../../etc/passwd"),                  # 8 escapes ROOT
        post(9, image="/etc/passwd"),                       # 9 absolute
        post(10, image="images/link.png"),                  # 10 symlink out
        post(11, image="images/missing.png"),               # 11 missing
        post(12, image="images/empty.png"),                 # 12 empty
        post(13, image="images/trunc.png"),                 # 13 truncated
        post(14, image="images/text.png"),                  # 14 not an image
        post(15, image="images/bomb.png"),                  # 15 decompression bomb
        post(16, image="images/gray.png"),                  # 16 good: grayscale converted
        post(17, image=None, drug=0),                       # 17 good
    ]
    write_jsonl(root / "posts.jsonl", posts)
    write_jsonl(root / "web.jsonl", [
        {"id": "w1", "image": "images/ok.png", "class": "pills", "query": "xanax"},
        {"id": "w2", "image": "images/ok.png", "class": "heroin", "query": "h"},
    ])
    write_jsonl(root / "accounts.jsonl", [
        account("alice"),
        account("bob", followers=-1),
        account("carol", expert1="yes"),
    ])
    write_jsonl(root / "timelines" / "alice.jsonl", [post("t1", drug=None), post("t2", account="mallory")])
    write_jsonl(root / "timelines" / "ghost.jsonl", [post("g1", account="ghost")])
    expected = [
        "posts.jsonl:2: json: invalid JSON: Expecting property name enclosed in double quotes at column 14",
        "posts.jsonl:3: tags: missing required field",
        "posts.jsonl:4: comments: expected a list of strings, got a string",
        "posts.jsonl:5: drug: unknown label 7; expected 0 or 1",
        "posts.jsonl:6: id: duplicate id 'p1' (first on line 1)",
        "posts.jsonl:8: image: path '../../etc/passwd' escapes ROOT ('..')",
        "posts.jsonl:9: image: absolute path '/etc/passwd'; image paths must be relative to ROOT",
        f"posts.jsonl:10: image: path 'images/link.png' is a symlink pointing outside ROOT "
        f"(to {os.path.realpath(outside / 'secret.png')})",
        "posts.jsonl:11: image: file not found: images/missing.png",
        "posts.jsonl:12: image: empty file: images/empty.png",
        "posts.jsonl:13: image: truncated image file: images/trunc.png",
        "posts.jsonl:14: image: not an image (unrecognised format): images/text.png",
        "posts.jsonl:15: image: decompression bomb: 9000x9000 = 81000000 pixels exceeds the limit of "
        "50000000 (raise max_pixels if the image is genuine)",
        "web.jsonl:2: class: unknown label 'heroin'; expected one of weed, pills, syrup, negative",
        "accounts.jsonl:2: followers: negative count -1; expected a non-negative integer",
        'accounts.jsonl:3: expert1: unknown label "yes"; expected 0 or 1',
        "timelines/alice.jsonl:2: account: 'mallory' differs from the timeline's account 'alice'",
        "timelines/ghost.jsonl:1: account: timeline of account 'ghost', which is missing from accounts.jsonl",
    ]
    good = {"posts.jsonl": 4, "web.jsonl": 1, "accounts.jsonl": 1, "timelines/alice.jsonl": 1, "timelines/ghost.jsonl": 0}
    return good, expected


def test_every_bad_kind_is_listed_and_no_good_record_is_lost(tmp_path, capsys):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    good, expected = build_bad_root(root, outside)
    rejected = tmp_path / "rejected.jsonl"

    status = main(["validate", str(root), "--rejected", str(rejected)])
    out = capsys.readouterr().out

    assert status == 1
    listed = [line for line in out.splitlines() if ":" in line and line.split(":")[0].endswith(".jsonl")]
    assert listed == expected
    for file, n in good.items():
        bad = sum(1 for e in expected if e.startswith(file + ":"))
        assert f"{n:>7} good  {bad:>6} rejected" in next(line for line in out.splitlines() if file in line and " good " in line)
    assert "timestamp without offset (taken as UTC)" in out and "image converted from grayscale (L)" in out

    rows = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert [f"{r['file']}:{r['line']}: {r['field']}: {r['reason']}" for r in rows] == expected
    assert all(set(r) == {"file", "line", "field", "reason"} for r in rows)

    report = validate(root)
    assert [r["id"] for r in report.posts.records] == ["p1", "p7", "p16", "p17"]
    assert [a["username"] for a in report.accounts.records] == ["alice"]
    assert [p["id"] for p in report.accounts.records[0]["timeline"]] == ["pt1"]


def test_clean_world_exits_0_from_the_command_line(tmp_path):
    from drugjax.synthetic.world import generate

    root = generate(tmp_path / "w", preset="tiny", seed=3, image_size=32)
    rejected = tmp_path / "r.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "drugjax.data", "validate", str(root), "--rejected", str(rejected)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no rejections" in proc.stdout
    assert rejected.read_text() == ""


def test_missing_root_is_a_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_control_characters_from_the_data_never_reach_the_terminal(tmp_path, capsys):
    """An ANSI escape in a record (here its image path and id) is printed escaped."""
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    write_jsonl(root / "posts.jsonl", [post(1, image="images/\x1b[2J\x1b]0;pwned\x07.png", id="\x1b[31mred")])
    assert main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out


def test_old_and_new_synthetic_worlds_both_validate(tmp_path):
    """Version 4 extended the format (JPEGs, empty timeline queries, unlabelled timeline
    posts); a version-3-shaped world (square PNGs, every timeline post labelled and with a
    query) must still validate clean."""
    from PIL import Image

    from drugjax.synthetic.world import generate

    root = generate(tmp_path / "w", preset="tiny", seed=5, image_size=24)
    assert not validate(root).rejections

    def to_v3(rec: dict) -> dict:
        if rec.get("image"):
            png = rec["image"].replace(".jpg", ".png")
            with Image.open(root / rec["image"]) as im:
                side = min(im.size)
                im.convert("RGB").crop((0, 0, side, side)).save(root / png)
            (root / rec["image"]).unlink()
            rec["image"] = png
        if rec.get("query") == "":
            rec["query"] = "weed"
        if "drug" in rec and rec["drug"] is None:
            rec["drug"] = 0
        return rec

    for path in [root / "posts.jsonl", root / "web.jsonl", *sorted((root / "timelines").iterdir())]:
        recs = [to_v3(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    assert not list(root.rglob("*.jpg"))
    report = validate(root)
    assert not report.rejections and not report.oddities
    assert len(report.posts.records) == 40
    timeline = [p for a in report.accounts.records for p in a["timeline"]]
    assert timeline and all(p["query"] == "weed" and p["drug"] in (0, 1) for p in timeline)


def test_where_prints_the_root_of_a_world_that_validates(tmp_path, capsys):
    from drugjax.data.builders import synthetic_root

    args = ["where", "--preset", "tiny", "--image-size", "16", "--data-dir", str(tmp_path)]
    assert main(args) == 0
    root = Path(capsys.readouterr().out.strip())
    assert root == synthetic_root("tiny", 0, 16, tmp_path) and root.parent == tmp_path / "synthetic"
    assert validate(root).ok
    assert main(args) == 0 and Path(capsys.readouterr().out.strip()) == root  # the same world, not another
    assert main(["where", "--preset", "huge", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no synthetic world preset 'huge'; the presets are ") and err.count("\n") == 1
