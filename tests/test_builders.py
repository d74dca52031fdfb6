"""TFDS builders and prepare(): round trip, rejections, caching, interrupted builds."""

from __future__ import annotations

import io
import logging
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drugjax.data import builders as B
from drugjax.data import folds
from drugjax.data import pipeline as P
from drugjax.data import schema
from drugjax.synthetic import world


def _image(root: Path, name: str, value: int, mode: str = "RGB", fmt: str = "PNG", size=(14, 10)) -> str:
    arr = (np.arange(size[0] * size[1] * 3).reshape(size[1], size[0], 3) * 3 + value) % 256
    Image.fromarray(arr.astype(np.uint8)).convert(mode).save(root / "images" / name, fmt)
    return f"images/{name}"


def _post(i: int, image: str | None, **kw) -> dict:
    rec = {
        "id": f"p{i}",
        "account": f"acct{i % 3}",
        "image": image,
        "caption": f"caption {i} 💊 dm for menu",
        "tags": ["weed", f"t{i}"],
        "comments": [f"comment {i}"] if i % 2 else [],
        "timestamp": "2016-03-01T23:45:00+00:00",
        "query": "weed",
        "drug": i % 2,
    }
    rec.update(kw)
    return rec


def make_root(root: Path, *, posts: int = 12, bad_lines: int = 0) -> Path:
    """A small dataset ROOT with every kind of record, extra fields and odd images."""
    (root / "images").mkdir(parents=True)
    (root / "timelines").mkdir()
    lines = []
    for i in range(posts):
        image = None if i == 2 else _image(root, f"p{i}.png", i * 11)
        lines.append(json.dumps(_post(i, image, extra={"likes": i}) if i == 1 else _post(i, image)))
    lines += ["{not json"] * bad_lines
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n")
    web = []
    for i, cls in enumerate(["weed", "pills", "syrup", "negative", "weed", "pills"]):
        # A grayscale JPEG and a palette PNG are converted, not rejected.
        if i == 0:
            image = _image(root, f"w{i}.jpg", 7, mode="L", fmt="JPEG")
        elif i == 1:
            image = _image(root, f"w{i}.png", 9, mode="P")
        else:
            image = _image(root, f"w{i}.jpg", 50 + i, fmt="JPEG", size=(40, 30))
        web.append({"id": f"w{i}", "image": image, "class": cls, "query": cls})
    (root / "web.jsonl").write_text("\n".join(json.dumps(w) for w in web) + "\n")
    accounts = [
        {"username": f"acct{i}", "bio": "plug 📦 dm", "followers": 100 + i, "following": 7, "expert1": i % 2, "expert2": 1}
        for i in range(3)
    ]
    (root / "accounts.jsonl").write_text("\n".join(json.dumps(a) for a in accounts) + "\n")
    timeline = [_post(100 + k, _image(root, f"t{k}.png", k), account="acct0", drug=None if k == 0 else 1) for k in range(3)]
    (root / "timelines" / "acct0.jsonl").write_text("\n".join(json.dumps(t) for t in timeline) + "\n")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("root"))
    data_dir = tmp_path_factory.mktemp("cache")
    return root, data_dir, B.prepare(root, image_size=8, data_dir=data_dir)


def test_round_trip_reads_back_the_loaders_records(built):
    root, _, sources = built
    assert set(sources) == {"posts", "web", "accounts"}
    for name, load in (("posts", schema.load_posts), ("web", schema.load_web), ("accounts", schema.load_accounts)):
        want = load(root).records
        got = [json.loads(sources[name][i]["json"]) for i in range(len(sources[name]))]
        assert got == json.loads(json.dumps(want)), name  # same records, same order, extra fields kept
    post = sources["posts"][1]
    assert post["id"] == "p1" and post["caption"] == "caption 1 💊 dm for menu"
    assert post["tags"] == ["weed", "t1"] and post["comments"] == ["comment 1"]
    assert post["drug"] == 1 and post["kind"] == 1 and post["fold"] == folds.fold_of("p1")
    assert json.loads(post["json"])["extra"] == {"likes": 1}
    assert sources["posts"][2]["image"] == b""  # the post without an image
    web = [sources["web"][i] for i in range(len(sources["web"]))]
    assert [w["kind"] for w in web] == [2, 3, 4, 5, 2, 3]
    account = sources["accounts"][0]
    assert account["username"] == "acct0" and account["followers"] == 100
    assert [p["id"] for p in account["timeline"]] == ["p100", "p101", "p102"]
    assert [p["drug"] for p in account["timeline"]] == [-1, 1, 1]  # -1: unlabelled
    assert sources["accounts"][1]["timeline"] == []


def test_stored_images_decode_to_what_read_image_returns(built):
    root, _, sources = built
    for name in ("posts", "web"):
        for i in range(len(sources[name])):
            rec = sources[name][i]
            path = json.loads(rec["json"])["image"]
            if path is None:
                continue
            stored = np.asarray(Image.open(io.BytesIO(rec["image"])))
            original = schema.read_image(root, path)
            if min(original.shape[:2]) <= 16:  # 2 * image_size: stored as it is, or converted
                np.testing.assert_array_equal(stored, original, err_msg=f"{name} {i}")
            else:  # downscaled to a shorter side of 16, same picture
                assert min(stored.shape[:2]) == 16
                h, w = stored.shape[:2]
                approx = np.asarray(Image.fromarray(original).resize((w, h), Image.BILINEAR), np.float32)
                assert np.abs(stored - approx).mean() < 8, f"{name} {i}"


def test_large_images_are_stored_downscaled(tmp_path):
    root = make_root(tmp_path / "root")
    sources = B.prepare(root, image_size=4, data_dir=tmp_path / "cache")  # keep shorter side <= 8
    sizes = [Image.open(io.BytesIO(sources["web"][i]["image"])).size for i in range(len(sources["web"]))]
    assert sizes[2] == (11, 8)  # 40 x 30 -> shorter side 8
    assert all(min(s) <= 8 for s in sizes)


def test_builds_record_version_and_origin(built):
    root, _, sources = built
    md = sources["posts"].metadata
    assert md["builder_version"] == "1.0.0" and md["source"] == "root"
    assert md["root"] == str(root.resolve()) and len(md["fingerprint"]) == 40
    assert md["image_size"] == 8
    assert sources["web"].metadata["oddities"] == {"image converted from grayscale (L)": 1, "image converted from palette (P)": 1}


def test_synthetic_config_names_preset_and_seed():
    cfg = B.synthetic_config("paper", 3, 224)
    assert cfg.name.startswith("synthetic_paper_seed3_224px_gen") and (cfg.preset, cfg.seed) == ("paper", 3)
    assert "paper" in cfg.description and "seed 3" in cfg.description


def test_loaders_read_built_sources(built):
    _, _, sources = built
    ev = P.eval_loader(sources, image_size=8, per_device_batch=4, num_devices=2)
    # 12 posts - 1 without image + 6 web images.
    assert ev.num_examples == {"posts": 11, "web": 6}
    batches = list(ev)
    assert [b["image"].shape for b in batches] == [(2, 4, 8, 8, 3)] * 3
    assert int(sum(b["valid"].sum() for b in batches)) == 17
    train = P.train_loader(sources, image_size=8, per_device_batch=3, seed=0, mixture={"posts": 1, "web": 1})
    first = [next(train) for _ in range(3)]
    # Worker processes get the built sources by pickling and produce the same batches.
    with P.train_loader(sources, image_size=8, per_device_batch=3, seed=0, mixture={"posts": 1, "web": 1}, workers=1) as w:
        for want in first:
            got = next(w)
            assert all(np.array_equal(got[k], want[k]) for k in want)


def test_build_is_cached_and_rebuilt_when_the_data_changes(tmp_path, monkeypatch):
    root = make_root(tmp_path / "root")
    calls = []
    original = B.PostsBuilder._generate_examples
    monkeypatch.setattr(B.PostsBuilder, "_generate_examples", lambda self, **kw: calls.append(1) or original(self, **kw))
    B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    assert len(calls) == 1
    with open(root / "posts.jsonl", "a") as f:
        f.write(json.dumps(_post(50, None)) + "\n")
    again = B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    assert len(calls) == 2 and len(again["posts"]) == 13


def test_a_build_says_what_it_builds_without_tfds_download_banner(tmp_path, capsys, caplog):
    root = make_root(tmp_path / "root")
    with caplog.at_level(logging.INFO, logger="drugjax.data.builders"):
        sources = B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    printed = capsys.readouterr()
    assert "Downloading and preparing" not in printed.out + printed.err  # nothing is downloaded
    assert "downloaded and prepared" not in printed.out + printed.err
    assert f"building drugjax_posts from the dataset at {root}" in caplog.text and "built drugjax_posts" in caplog.text
    assert sources["posts"].root == root  # the ROOT it read, for the run records


def test_same_input_same_bytes(tmp_path):
    root = make_root(tmp_path / "root")
    B.prepare(root, image_size=8, data_dir=tmp_path / "a")
    B.prepare(root, image_size=8, data_dir=tmp_path / "b")
    files_a = sorted((tmp_path / "a").rglob("*.array_record*"))
    files_b = sorted((tmp_path / "b").rglob("*.array_record*"))
    assert len(files_a) == 3 and [f.name for f in files_a] == [f.name for f in files_b]
    for fa, fb in zip(files_a, files_b):
        assert fa.read_bytes() == fb.read_bytes(), fa.name


def test_interrupted_build_is_not_mistaken_for_a_finished_one(tmp_path, monkeypatch):
    root = make_root(tmp_path / "root")
    real = B.encode_image
    seen = []

    def dies_after_three(*args):
        seen.append(1)
        if len(seen) > 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build
        return real(*args)

    monkeypatch.setattr(B, "encode_image", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    monkeypatch.setattr(B, "encode_image", real)
    sources = B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    assert len(sources["posts"]) == 12
    assert [sources["posts"][i]["id"] for i in range(12)] == [f"p{i}" for i in range(12)]


def test_bad_records_are_rejected_listed_and_the_rest_kept(tmp_path, caplog):
    root = make_root(tmp_path / "root", posts=40, bad_lines=1)  # 1 of 41 = 2.4% < 5%
    sources = B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    assert len(sources["posts"]) == 40
    (rejection,) = sources["posts"].rejections
    assert rejection == schema.Rejection("posts.jsonl", 41, "json", rejection.reason)
    assert rejection.reason.startswith("invalid JSON")
    assert f"rejected {rejection}" in caplog.text


def test_too_many_rejections_fail_with_the_list(tmp_path):
    root = make_root(tmp_path / "root", posts=10, bad_lines=2)  # 2 of 12 = 16.7%
    with pytest.raises(B.BuildError) as err:
        B.prepare(root, image_size=8, data_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "2 of 12 records rejected (16.7%)" in msg and "limit of 5.0%" in msg
    assert "posts.jsonl:11: json: invalid JSON" in msg and "posts.jsonl:12: json" in msg
    assert "max_rejected" in msg
    # The limit is configurable.
    sources = B.prepare(root, image_size=8, data_dir=tmp_path / "cache", max_rejected=0.2)
    assert len(sources["posts"]) == 10 and len(sources["posts"].rejections) == 2


def test_missing_root_or_posts_is_one_clear_error(tmp_path):
    with pytest.raises(B.BuildError, match="is not a folder"):
        B.prepare(tmp_path / "nowhere", data_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(B.BuildError, match="posts.jsonl is missing"):
        B.prepare(tmp_path / "empty", data_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- synthetic world


def _ids(source):
    return [source[i]["id"] for i in range(len(source))]


def test_a_finished_dataset_is_reused_without_a_write_in_its_folder(tmp_path):
    """A data folder shared read only (a cluster's prepared datasets) serves finished
    datasets: reusing one takes no build lock, so nothing is written there."""
    root = make_root(tmp_path / "root")
    cache = tmp_path / "cache"
    B.prepare(root, image_size=8, data_dir=cache)
    locks = list((cache / "tfds").glob(f"*/*/{B.BUILD_LOCK}"))
    assert len(locks) == 3  # posts, web, accounts: each built under its lock
    for lock in locks:
        lock.unlink()
    before = sorted(p for p in (cache / "tfds").rglob("*"))
    sources = B.prepare(root, image_size=8, data_dir=cache)
    assert len(sources["posts"]) == 12
    assert sorted(p for p in (cache / "tfds").rglob("*")) == before


def test_a_killed_tfds_builds_folder_is_removed_by_the_next_build(tmp_path):
    """A build killed while tfds writes leaves its ``incomplete.*`` folder beside the
    dataset's version folder for good (tfds removes it on an exception, not on SIGKILL;
    found by bench/soak.py's tfds command): the next build of that dataset removes it."""
    root = make_root(tmp_path / "root")
    cache = tmp_path / "cache"
    config = B.root_config(root, image_size=8)
    killed = cache / "tfds" / "drugjax_posts" / config.name / "incomplete.3G1I3M_1.0.0"
    killed.mkdir(parents=True)
    (killed / "drugjax_posts-full.array_record-00000-of-00001").write_bytes(b"half a shard")
    sources = B.prepare(root, image_size=8, data_dir=cache)
    assert len(sources["posts"]) == 12
    assert not list((cache / "tfds").glob("*/*/incomplete.*"))
    assert [p.name for p in killed.parent.iterdir() if not p.name.startswith(".")] == ["1.0.0"]


def test_two_builds_of_one_dataset_at_once_both_succeed(tmp_path, monkeypatch, caplog):
    """Two processes building the same dataset at once (two train.py runs started
    together on a fresh cache): tfds renamed the second one's folder onto the first's and
    failed with a FileExistsError traceback. The second now waits for the first and
    reuses its build. (Two threads stand for the two processes: flock locks conflict
    between two open files of one process too.)"""
    import threading

    root = make_root(tmp_path / "root")
    cache = tmp_path / "cache"
    first_is_writing, first_may_finish, second_is_done_or_waits = (threading.Event() for _ in range(3))
    real = B.PostsBuilder._generate_examples

    def slow_in_the_first(self, **kw):
        for i, example in enumerate(real(self, **kw)):
            if threading.current_thread().name == "first" and i == 1:
                first_is_writing.set()
                first_may_finish.wait(60)
            yield example

    class Waiting(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("waiting for another process building"):
                second_is_done_or_waits.set()

    monkeypatch.setattr(B.PostsBuilder, "_generate_examples", slow_in_the_first)
    handler = Waiting()
    caplog.set_level(logging.INFO, logger="drugjax.data.builders")
    logging.getLogger("drugjax.data.builders").addHandler(handler)
    results, errors = {}, {}

    def build(name):
        try:
            results[name] = B.prepare(root, image_size=8, data_dir=cache)
        except Exception as e:  # noqa: BLE001 (the assertion below shows it)
            errors[name] = e
        finally:
            if name == "second":
                second_is_done_or_waits.set()

    try:
        first = threading.Thread(target=build, args=("first",), name="first")
        first.start()
        assert first_is_writing.wait(60)
        second = threading.Thread(target=build, args=("second",), name="second")
        second.start()
        assert second_is_done_or_waits.wait(60)
        first_may_finish.set()
        first.join(60)
        second.join(60)
    finally:
        first_may_finish.set()
        logging.getLogger("drugjax.data.builders").removeHandler(handler)
    assert errors == {}
    assert [len(results[name]["posts"]) for name in ("first", "second")] == [12, 12]


def test_prepare_synthetic_generates_once_and_rebuilds_for_another_seed(tmp_path, monkeypatch):
    calls = []
    real = world.generate
    monkeypatch.setattr(world, "generate", lambda *a, **k: calls.append(k) or real(*a, **k))
    first = B.prepare(None, preset="tiny", seed=0, data_dir=tmp_path)
    md = first["posts"].metadata
    assert (md["source"], md["preset"], md["seed"], md["image_size"]) == ("synthetic", "tiny", 0, 96)
    assert md["world"]["generator"] == "drugjax.synthetic.world" and md["builder_version"] == "1.0.0"
    # Round trip through generator, validation and builder: the same records come back.
    root = tmp_path / "synthetic" / B._world_name("tiny", 0, 96)
    assert [json.loads(first["posts"][i]["json"]) for i in range(len(first["posts"]))] == schema.load_posts(root).records
    assert all(not s.rejections for s in first.values())
    again = B.prepare(None, preset="tiny", seed=0, data_dir=tmp_path)
    assert len(calls) == 1 and _ids(again["posts"]) == _ids(first["posts"])
    other = B.prepare(None, preset="tiny", seed=1, data_dir=tmp_path)
    assert len(calls) == 2 and other["posts"].metadata["seed"] == 1
    assert [other["posts"][i]["json"] for i in range(5)] != [first["posts"][i]["json"] for i in range(5)]


def test_interrupted_generation_is_not_mistaken_for_a_world(tmp_path, monkeypatch):
    real = world.generate

    def interrupted(out, **kw):
        Path(out).mkdir(parents=True)
        (Path(out) / "posts.jsonl").write_text("")  # half a world
        raise KeyboardInterrupt

    monkeypatch.setattr(world, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        B.prepare(None, preset="tiny", seed=0, data_dir=tmp_path)
    monkeypatch.setattr(world, "generate", real)
    sources = B.prepare(None, preset="tiny", seed=0, data_dir=tmp_path)
    assert len(sources["posts"]) == world.PRESETS["tiny"].n_posts


def test_bad_images_are_rejected_by_the_build_with_the_validators_reason(tmp_path):
    root = make_root(tmp_path / "root")
    (root / "images" / "empty.png").write_bytes(b"")
    with open(root / "web.jsonl", "a") as f:
        f.write(json.dumps({"id": "gone", "image": "images/nope.png", "class": "weed", "query": "q"}) + "\n")
        f.write(json.dumps({"id": "empty", "image": "images/empty.png", "class": "pills", "query": "q"}) + "\n")
        f.write(json.dumps({"id": "out", "image": "../outside.png", "class": "syrup", "query": "q"}) + "\n")
    sources = B.prepare(root, image_size=8, data_dir=tmp_path / "cache", max_rejected=0.5)
    assert [str(r) for r in sources["web"].rejections] == [
        str(r) for r in schema.load_web(root).rejections
    ]
    reasons = {r.line: r.reason for r in sources["web"].rejections}
    assert reasons[7] == "file not found: images/nope.png"
    assert reasons[8] == "empty file: images/empty.png"
    assert "escapes ROOT" in reasons[9]
    assert len(sources["web"]) == 6  # every good record kept


def test_a_killed_first_use_builds_leftovers_are_removed_by_the_next(tmp_path):
    """A build killed on first use leaves its partial world and the generator's temporary
    folder beside it (found by bench/soak.py); the next build removes those whose process
    is gone, on this host, and leaves a live build's alone."""
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worlds, host = tmp_path / "synthetic", socket.gethostname()
    name = B._world_name("tiny", 0, 24)
    partial = worlds / f".{name}.partial-{host}-{dead.pid}"
    tmp = worlds / f".{partial.name}.tmp-{host}-{dead.pid}-abc123"
    live = worlds / f".{name}.partial-{host}-{running.pid}"
    for folder in (partial / "images", tmp / "images", live):
        folder.mkdir(parents=True)
    try:
        root = B.synthetic_root("tiny", 0, 24, tmp_path)
    finally:
        running.kill()
        running.wait()
    assert sorted(p.name for p in worlds.iterdir()) == sorted([live.name, root.name])
