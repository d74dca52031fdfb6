"""import-instaloader against folders written by Instaloader's own code (tests/instaloader_support.py):
hashtag folders, a profile folder, a sidecar, a video, comments with answers; incremental
re-import; bad input listed and counted; pseudonymisation; then label and train through train.py."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import timezone
from pathlib import Path

import instaloader  # a test dependency: the `dev` extra installs it
import pytest
from instaloader_support import DRUG, Downloader, write_collection

from drugjax.data import instaloader_import as imp
from drugjax.data import rootfiles
from drugjax.data.__main__ import main as cli
from drugjax.data.pseudonym import Pseudonymizer
from drugjax.data.validate import validate
from drugjax.errors import DiskFullError
from drugjax.runtime import atomic



def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes' digest and mtime: to prove nothing changed."""
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    base = tmp_path / "downloads"
    write_collection(base)
    return base


def sources(base: Path) -> list[Path]:
    return [base / "#xans", base / "#lean", base / "dealer.one"]


def test_the_fixture_is_what_instaloader_writes(collection):
    # Instaloader's own loader reads the metadata back as Posts and Profiles.
    ctx = instaloader.Instaloader().context
    post = instaloader.load_structure_from_file(ctx, str(collection / "#xans" / "2016-03-02_00-00-00_UTC.json.xz"))
    assert isinstance(post, instaloader.Post) and post.shortcode == "Bx00"
    prof = instaloader.load_structure_from_file(ctx, str(collection / "dealer.one" / "dealer.one_4242.json.xz"))
    assert isinstance(prof, instaloader.Profile) and prof.username == "dealer.one"
    names = {p.name for p in (collection / "#xans").iterdir()}
    assert {"2016-03-02_00-01-00_UTC_1.jpg", "2016-03-02_00-01-00_UTC_2.jpg", "2016-03-02_00-01-00_UTC_2.mp4",
            "2016-03-02_00-00-00_UTC_comments.json", "2016-03-02_00-00-00_UTC.txt", "#xans.json.xz"} <= names


def test_hashtag_profile_sidecar_and_comments_import_into_a_valid_root(collection, tmp_path):
    root = tmp_path / "root"
    before = snapshot(collection)
    report = imp.import_folders(sources(collection), root)
    assert report.problems == []
    assert snapshot(collection) == before  # the Instaloader folders are never written to

    posts = {r["id"]: r for r in records(root / "posts.jsonl")}
    assert len(posts) == 12  # 10 + 3 - the one found by both searches
    ctx = instaloader.Instaloader().context
    for path in (collection / "#xans").glob("*_UTC.json.xz"):
        post = instaloader.load_structure_from_file(ctx, str(path))
        rec = posts[post.shortcode]
        # tags, caption, owner and time as Instaloader's own Post properties give them
        assert rec["tags"] == post.caption_hashtags
        assert rec["caption"] == (post.caption or "")
        assert rec["account"] == post.owner_username
        assert rec["timestamp"] == post.date_utc.replace(tzinfo=timezone.utc).isoformat()
        assert rec["drug"] is None and rec["likes"] == post.likes and rec["is_video"] == post.is_video
    first = posts["Bx00"]
    assert first["timestamp"] == "2016-03-02T00:00:00+00:00" and first["query"] == "xans"
    assert first["tags"] == ["xans", "bars0"]
    # every comment and every answer, in the order of Instaloader's _comments.json
    assert sorted(first["comments"]) == sorted(["how much?", "dm me", "cashapp only", "🔥"])
    sidecar = posts["Bx01"]
    assert sidecar["images"] == ["images/instagram/Bx01_1.jpg", "images/instagram/Bx01_2.jpg"]
    assert sidecar["image"] == sidecar["images"][0] and sidecar["typename"] == "GraphSidecar"
    assert posts["Bx02"]["is_video"] is True and posts["Bx02"]["image"] == "images/instagram/Bx02.jpg"
    assert report.counts["videos skipped (.mp4; their thumbnails are imported as pictures)"] == 2
    both = posts["Bx03"]
    assert both["query"] == "xans" and both["queries"] == ["xans", "lean"]
    assert report.counts["posts found under several hashtags (one record, queries merged)"] == 1
    assert (root / both["image"]).read_bytes() == (collection / "#xans" / "2016-03-02_00-03-00_UTC.jpg").read_bytes()

    (account,) = records(root / "accounts.jsonl")
    assert account["username"] == "dealer.one" and account["bio"] == "dm to order 📦 @Partner_2"
    assert (account["followers"], account["following"]) == (1200, 80)
    assert account["expert1"] is None and account["expert2"] is None
    timeline = records(root / "timelines" / "dealer.one.jsonl")
    assert [p["id"] for p in timeline] == ["Cd00", "Cd01", "Cd02"]
    assert all(p["account"] == "dealer.one" and p["drug"] is None for p in timeline)
    assert len(timeline[0]["images"]) == 2

    result = validate(root)
    assert result.ok, [str(r) for r in result.rejections]
    assert result.oddities["post not labelled yet (drug null; left out of training and evaluation)"] == 12


def test_reimport_adds_only_new_posts_and_keeps_labels(collection, tmp_path):
    root = tmp_path / "root"
    imp.import_folders(sources(collection), root)
    # a researcher labels one post and one account by hand
    lines = (root / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[0])
    rec["drug"] = 1
    lines[0] = json.dumps(rec, ensure_ascii=False)
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    labelled_bytes = (root / "posts.jsonl").read_bytes()
    acc = json.loads((root / "accounts.jsonl").read_text())
    acc.update(expert1=1, expert2=0)
    (root / "accounts.jsonl").write_text(json.dumps(acc) + "\n")

    # a new download adds one post to #xans and one to the profile
    d = Downloader(collection)
    d.post("#xans", "Bnew1", owner="newbie", minutes=500, caption="new #xans", color=DRUG)
    d.post("dealer.one", "Cnew1", owner="dealer.one", owner_id="4242", minutes=501, caption="restock")
    report = imp.import_folders(sources(collection), root)
    assert report.problems == []
    assert report.counts["new posts in posts.jsonl"] == 1 and report.counts["new timeline posts"] == 1
    assert report.counts["posts already in posts.jsonl (left as they are)"] == 13  # Bx03 in both folders
    assert report.counts["accounts already in accounts.jsonl (left as they are)"] == 1
    after = (root / "posts.jsonl").read_bytes()
    assert after.startswith(labelled_bytes)  # the labelled lines are untouched, byte for byte
    assert [r["id"] for r in records(root / "posts.jsonl")][-1] == "Bnew1"
    assert json.loads((root / "accounts.jsonl").read_text())["expert1"] == 1
    assert [r["id"] for r in records(root / "timelines" / "dealer.one.jsonl")][-1] == "Cnew1"
    # a third run finds nothing new and changes nothing
    again = snapshot(root)
    imp.import_folders(sources(collection), root)
    assert {k: v[0] for k, v in snapshot(root).items()} == {k: v[0] for k, v in again.items()}
    assert not list(root.rglob("*.tmp"))  # no temporary file left behind
    assert validate(root).ok


def test_an_interrupted_import_leaves_whole_files_and_a_rerun_completes(collection, tmp_path, monkeypatch):
    root = tmp_path / "root"
    real_write = rootfiles.write_lines

    def interrupted_at_posts(path, lines):
        if path.name == "posts.jsonl":
            raise KeyboardInterrupt  # ^C after accounts.jsonl and the timelines were written
        real_write(path, lines)

    monkeypatch.setattr(rootfiles, "write_lines", interrupted_at_posts)
    with pytest.raises(KeyboardInterrupt):
        imp.import_folders(sources(collection), root)
    monkeypatch.undo()
    assert not (root / "posts.jsonl").exists() and len(records(root / "timelines" / "dealer.one.jsonl")) == 3
    report = imp.import_folders(sources(collection), root)
    assert report.counts["new posts in posts.jsonl"] == 12 and report.counts["new timeline posts"] == 0
    assert validate(root).ok

    # inside one file: the write fails after the temporary file was filled; the old file
    # stays as it was and the temporary file is removed
    before = (root / "posts.jsonl").read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="the disk is full: writing .*posts.jsonl failed"):
        rootfiles.write_lines(root / "posts.jsonl", [b'{"half": '])
    monkeypatch.undo()
    assert (root / "posts.jsonl").read_bytes() == before and not list(root.glob(".posts.jsonl.*"))


def test_bad_input_is_listed_counted_and_the_rest_is_imported(collection, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "notes").mkdir(parents=True)
    (bad / "notes" / "readme.txt").write_text("not instaloader")
    xans = collection / "#xans"
    # a truncated .json.xz (cut in the middle, as an interrupted copy leaves it)
    truncated = xans / "2016-03-02_00-04-00_UTC.json.xz"
    truncated.write_bytes(truncated.read_bytes()[:40])
    # a metadata file whose picture is missing
    (xans / "2016-03-02_00-05-00_UTC.jpg").unlink()
    # a picture without its metadata file, and a sidecar's two
    (xans / "2016-03-02_00-06-00_UTC.json.xz").unlink()
    (xans / "2016-03-02_00-01-00_UTC.json.xz").unlink()
    # a profile folder without its profile metadata
    (collection / "dealer.one" / "dealer.one_4242.json.xz").unlink()
    root = tmp_path / "root"
    status = cli(["import-instaloader", str(bad / "notes"), *map(str, sources(collection)), "--out", str(root)])
    out = capsys.readouterr().out
    assert status == 1
    assert "notes: not an Instaloader folder: no <date>_UTC.json.xz or .json metadata files" in out
    assert "2016-03-02_00-04-00_UTC.json.xz: truncated or corrupt .json.xz" in out
    assert "2016-03-02_00-05-00_UTC.json.xz: picture missing: no 2016-03-02_00-05-00_UTC.jpg" in out
    assert "2016-03-02_00-06-00_UTC.jpg: picture without a metadata file (2016-03-02_00-06-00_UTC.json.xz)" in out
    assert ("2016-03-02_00-01-00_UTC_1.jpg: picture without a metadata file (2016-03-02_00-01-00_UTC.json.xz) "
            "beside it (also 2016-03-02_00-01-00_UTC_2.jpg): not imported") in out
    assert "dealer.one: no profile metadata (<username>_<id>.json.xz) in this folder" in out
    assert "its 3 posts: they are not imported" in out
    assert "problems (6; the rest was imported)" in out
    ids = {r["id"] for r in records(root / "posts.jsonl")}
    assert ids == {f"Bx{i:02d}" for i in range(10)} - {"Bx01", "Bx04", "Bx05", "Bx06"} | {"Bl01", "Bl02"}
    assert not (root / "accounts.jsonl").exists()
    assert validate(root).ok
    # the picture comes back, the import is re-run: that post is added, nothing else changes
    Downloader(collection).post("#xans", "Bx05", owner="user1", minutes=5, caption="gym day #legday #Xans 5")
    report = imp.import_folders(sources(collection), root)
    assert report.counts["new posts in posts.jsonl"] == 1 and "Bx05" in {r["id"] for r in records(root / "posts.jsonl")}


def test_uncompressed_metadata_and_foreign_posts_in_a_profile_folder(tmp_path):
    # `instaloader --no-compress-json` writes .json; a profile folder may also hold a post
    # of another account (a repost): listed, since a timeline is the account's own posts.
    d = Downloader(tmp_path / "dl", compress_json=False)
    d.profile("alice", userid="7", bio="hi", followers=3, following=4)
    d.post("alice", "Ca1", owner="alice", owner_id="7", minutes=1, caption="mine #a")
    d.post("alice", "Cb1", owner="bob", owner_id="8", minutes=2, caption="not mine")
    assert (tmp_path / "dl" / "alice" / "alice_7.json").is_file()
    root = tmp_path / "root"
    report = imp.import_folders([tmp_path / "dl" / "alice", tmp_path / "dl" / "alice"], root)
    assert [r["id"] for r in records(root / "timelines" / "alice.jsonl")] == ["Ca1"]
    assert len(report.problems) == 1 and "post of 'bob' in the profile folder of 'alice'" in report.problems[0].reason
    assert report.problems[0].path.endswith("2016-03-02_00-02-00_UTC.json")
    assert validate(root).ok


def test_metadata_of_an_unexpected_layout_is_a_problem_not_a_crash(collection, tmp_path):
    xans = collection / "#xans"
    odd = {"node": {"shortcode": "Bodd", "taken_at_timestamp": "yesterday", "owner": "someone",
                    "edge_media_to_caption": "text"}, "instaloader": {"node_type": "Post"}}
    (xans / "2016-03-03_00-00-00_UTC.json").write_text(json.dumps(odd))
    (xans / "2016-03-03_00-00-00_UTC.jpg").write_bytes((xans / "2016-03-02_00-00-00_UTC.jpg").read_bytes())
    (xans / "2016-03-02_00-00-00_UTC_comments.json").write_text('[{"text": "hi", "answers": 3}]')
    report = imp.import_folders([xans], tmp_path / "root")
    assert sorted(str(p).split("/")[-1] for p in report.problems) == [
        "2016-03-02_00-00-00_UTC.json.xz: 2016-03-02_00-00-00_UTC_comments.json: the answers to comment 0 are not a list",
        "2016-03-03_00-00-00_UTC.json: no usable taken_at_timestamp in the metadata (got 'yesterday')",
    ]
    assert report.counts["new posts in posts.jsonl"] == 9 and validate(tmp_path / "root").ok


def test_a_folder_of_folders_gets_a_hint(collection, tmp_path, capsys):
    assert cli(["import-instaloader", str(collection), "--out", str(tmp_path / "root")]) == 1
    assert f"it holds 3 folders that look like Instaloader output: pass those instead ({collection}/*)" in \
        capsys.readouterr().out


def test_root_must_not_overlap_a_source_or_be_a_synthetic_world(collection, tmp_path, capsys):
    assert cli(["import-instaloader", str(collection / "#xans"), "--out", str(collection / "#xans" / "root")]) == 2
    assert "overlap" in capsys.readouterr().err
    world = tmp_path / "world"
    world.mkdir()
    (world / "world.json").write_text("{}")
    assert cli(["import-instaloader", str(collection / "#xans"), "--out", str(world)]) == 2
    assert "synthetic world" in capsys.readouterr().err


def test_an_existing_image_with_other_content_is_not_overwritten(collection, tmp_path):
    root = tmp_path / "root"
    (root / "images" / "instagram").mkdir(parents=True)
    mine = root / "images" / "instagram" / "Bx00.jpg"
    mine.write_bytes(b"the researcher's own file")
    report = imp.import_folders([collection / "#xans"], root)
    assert mine.read_bytes() == b"the researcher's own file"
    assert [p.reason for p in report.problems] == [
        f"{mine} already exists with other content; it is not overwritten (move it away and re-run)"]
    assert "Bx00" not in {r["id"] for r in records(root / "posts.jsonl")}


def test_pseudonymize_hashes_usernames_mentions_and_ids(collection, tmp_path, capsys):
    root, key = tmp_path / "root", tmp_path / "secret" / "drugjax.key"
    assert cli(["import-instaloader", *map(str, sources(collection)), "--out", str(root),
                "--pseudonymize", str(key)]) == 0
    assert "created a new pseudonymisation key" in capsys.readouterr().out
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    pseudo = Pseudonymizer(key.read_bytes().strip())
    text = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*.jsonl"))
    for plain in ("dealer.one", "Dealer.one", "partner_2", "Partner_2", "user0", "Bx00", "Somewhere"):
        assert plain not in text, plain
    posts = {r["id"]: r for r in records(root / "posts.jsonl")}
    rec = posts[pseudo.post_id("Bx00")]
    assert rec["account"] == pseudo.username("user0")
    assert rec["caption"] == f"Plug 🔌 #Xans #bars0 dm @{pseudo.username('dealer.one')}"
    assert (root / "timelines" / f"{pseudo.username('dealer.one')}.jsonl").is_file()
    (account,) = records(root / "accounts.jsonl")
    assert account["bio"] == f"dm to order 📦 @{pseudo.username('partner_2')}"
    assert "instagram_id" not in account and "external_url" not in account
    assert not any(p.name.startswith("Bx") for p in (root / "images" / "instagram").iterdir())
    assert validate(root).ok
    # the same key again: nothing new; another key, or none: refused before anything is written
    assert cli(["import-instaloader", *map(str, sources(collection)), "--out", str(root),
                "--pseudonymize", str(key)]) == 0
    assert len(records(root / "posts.jsonl")) == 12
    other = tmp_path / "other.key"
    assert cli(["import-instaloader", str(collection / "#xans"), "--out", str(root), "--pseudonymize", str(other)]) == 2
    assert "pseudonymised with another key" in capsys.readouterr().err
    assert cli(["import-instaloader", str(collection / "#xans"), "--out", str(root)]) == 2
    assert "pass the same key file" in capsys.readouterr().err
    # a key inside ROOT would undo the pseudonymisation
    assert cli(["import-instaloader", str(collection / "#xans"), "--out", str(tmp_path / "r2"),
                "--pseudonymize", str(tmp_path / "r2" / "k")]) == 2
    assert "keep it outside ROOT" in capsys.readouterr().err


def test_control_characters_in_data_are_escaped_in_messages(tmp_path, capsys):
    evil = tmp_path / "#x\x1b[2Jans"
    evil.mkdir()
    (evil / "2016-03-02_00-00-00_UTC.json").write_text("{not json")
    cli(["import-instaloader", str(evil), "--out", str(tmp_path / "root")])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "#x\\x1b[2Jans" in out and "invalid JSON" in out


def test_tags_follow_instaloader_caption_hashtags():
    ctx = instaloader.Instaloader().context
    for caption in ["#Xans and #bars_2 #über #日本 ##double #a-b", "no tags", "", "e\u0301#Cafe\u0301 #x"]:
        post = instaloader.Post(ctx, {"shortcode": "x", "edge_media_to_caption": {"edges": [{"node": {"text": caption}}]}})
        assert imp.caption_hashtags(caption) == post.caption_hashtags, caption


def test_collection_to_training_through_train_py(collection, tmp_path, call_main):
    """Download -> import -> export for annotation -> label -> validate -> train.py data=dir."""
    root = tmp_path / "root"
    assert cli(["import-instaloader", *map(str, sources(collection)), "--out", str(root)]) == 0
    # straight after the import nothing is labelled yet: one clear error, no traceback
    unlabelled = _train(root, tmp_path, "unlabelled", call_main)
    assert unlabelled.code == 1 and "Traceback" not in unlabelled.err
    assert "error: none of the 12 posts has a drug label (0 or 1) yet; label them first" in unlabelled.err
    todo = tmp_path / "todo.csv"
    assert cli(["export-unlabelled", str(root), "--posts", str(todo)]) == 0
    rows = list(csv.DictReader(todo.open(encoding="utf-8")))
    assert len(rows) == 12 and all(r["drug"] == "" for r in rows)
    # the annotator: drug posts are the ones with a plug caption or a purple drink
    for r in rows:
        r["drug"] = "1" if ("Plug" in r["caption"] or "lean" in r["tags"]) else "0"
    done = tmp_path / "done.csv"
    with done.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert cli(["label", str(root), "--posts", str(done)]) == 0
    assert all(r["drug"] in (0, 1) for r in records(root / "posts.jsonl"))
    assert cli(["validate", str(root)]) == 0

    trained = _train(root, tmp_path, "run", call_main)
    assert trained.code == 0, trained.err[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["step"] == 2


def _train(root: Path, tmp_path: Path, run: str, call_main):
    """train.py data=dir on ROOT with a tiny model, as tests/test_train_hydra.py runs it."""
    from drugjax import train

    return call_main(
        train.main, "data=dir", f"data.root={root}", "data.sources=[posts]", f"data.data_dir={tmp_path / 'cache'}",
        "data.image_size=16", "model.backbone.name=tiny", "model.hidden=[16,16]", "data.batch_size=4",
        "data.eval_batch_size=4", "steps=2", "eval_every=2", "checkpoint_every=2", "log_every=1", "progress=false",
        "tensorboard=false", "data.augment=false", f"workdir={tmp_path / run}", cwd=tmp_path)
