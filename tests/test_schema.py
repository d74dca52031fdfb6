"""The dataset format: loaders keep good records whole and reject each bad input kind with
its exact reason; images are converted, never rejected, for the accepted oddities."""

from __future__ import annotations

import collections
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drugjax.data import schema
from drugjax.data.folds import fold_of
from drugjax.data.schema import ImageError, Rejection, load_accounts, load_posts, load_web, read_image

RNG = np.random.default_rng(0)
PIXELS = (RNG.random((12, 16, 3)) * 255).astype(np.uint8)


def png_bytes(arr: np.ndarray = PIXELS, mode: str | None = None) -> bytes:
    b = io.BytesIO()
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(b, "PNG")
    return b.getvalue()


def bomb_png(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h pixels (what a decompression bomb looks like)."""

    def chunk(typ: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def post(i: int | str, **kw) -> dict:
    rec = {
        "id": f"p{i}",
        "account": "alice",
        "image": "images/ok.png",
        "caption": "sippin 💜",
        "tags": ["lean", "mood"],
        "comments": ["how much?"],
        "timestamp": "2016-03-01T23:45:00-05:00",
        "query": "lean",
        "drug": 1,
    }
    rec.update(kw)
    return rec


def write_jsonl(path: Path, records: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, (str, bytes)) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "ok.png").write_bytes(png_bytes())
    return tmp_path


def only_rejection(loaded: schema.Loaded) -> Rejection:
    assert len(loaded.rejections) == 1, loaded.rejections
    return loaded.rejections[0]


# --------------------------------------------------------------------------- good records


def test_good_posts_keep_every_field_and_their_line(root):
    write_jsonl(root / "posts.jsonl", [post(1, extra={"likes": 3}), post(2, drug=0, image=None, tags=["#weed"])])
    loaded = load_posts(root)
    assert loaded.rejections == []
    a, b = loaded.records
    assert a["extra"] == {"likes": 3} and a["_line"] == 1 and a["image"] == "images/ok.png"
    assert b["_line"] == 2 and b["image"] is None
    assert b["tags"] == ["weed"]  # a leading '#' is stripped and counted
    assert loaded.oddities == {"tag with a leading '#' (stripped)": 1}
    assert loaded.counts == {"posts.jsonl": [2, 0]}


def test_image_paths_are_normalised(root):
    write_jsonl(root / "posts.jsonl", [post(1, image="./images/../images/ok.png")])
    assert load_posts(root).records[0]["image"] == "images/ok.png"


def test_timestamp_without_offset_is_utc_and_counted(root):
    write_jsonl(root / "posts.jsonl", [post(1, timestamp="2016-03-01T23:45:00"), post(2, timestamp="2016-03-01T23:45:00Z")])
    loaded = load_posts(root)
    assert [r["timestamp"] for r in loaded.records] == ["2016-03-01T23:45:00+00:00"] * 2
    assert loaded.oddities == {"timestamp without offset (taken as UTC)": 1}
    assert schema.hour_of_day("2016-03-01T23:45:00-05:00") == 23  # local hour, not UTC


def test_accounts_get_their_timelines(root):
    write_jsonl(root / "accounts.jsonl", [
        {"username": "alice", "bio": "dm to order", "followers": 10, "following": 2, "expert1": 1, "expert2": 0, "x": 1},
        {"username": "bob", "bio": "", "followers": 0, "following": 0, "expert1": 0, "expert2": 0},
    ])
    write_jsonl(root / "timelines" / "alice.jsonl", [post("t1", drug=None), post("t2", drug=0)])
    loaded = load_accounts(root)
    assert loaded.rejections == []
    alice, bob = loaded.records
    assert [p["id"] for p in alice["timeline"]] == ["pt1", "pt2"] and alice["x"] == 1
    assert bob["timeline"] == []
    assert loaded.oddities == {"account without a timeline file": 1}
    (root / "timelines" / "bob.json").write_text("{}")
    assert load_accounts(root).oddities["entry in timelines/ that is not a <username>.jsonl file (ignored)"] == 1


def test_not_yet_labelled_records_are_kept_and_counted(root):
    # An import writes drug / expert labels as null until annotators label them.
    write_jsonl(root / "posts.jsonl", [post(1, drug=None), post(2, drug=1)])
    loaded = load_posts(root)
    assert loaded.rejections == [] and [r["drug"] for r in loaded.records] == [None, 1]
    assert loaded.oddities == {"post not labelled yet (drug null; left out of training and evaluation)": 1}
    write_jsonl(root / "accounts.jsonl", [account("alice", expert1=None, expert2=None), account("bob", expert2=None),
                                          account("carol")])
    accounts = load_accounts(root)
    assert accounts.rejections == [] and len(accounts.records) == 3
    assert accounts.oddities["account not labelled yet by both experts (expert1/expert2 null)"] == 2


def test_fold_of_is_stable_and_balanced():
    assert fold_of("p000001") == fold_of("p000001")
    # sha1("p000001")[:8] as a big-endian integer, mod 5: fixed forever.
    import hashlib

    assert fold_of("p000001") == int.from_bytes(hashlib.sha1(b"p000001").digest()[:8], "big") % 5
    counts = collections.Counter(fold_of(f"p{i:06d}") for i in range(5000))
    assert sorted(counts) == [0, 1, 2, 3, 4] and min(counts.values()) > 900
    assert {fold_of("x", 3) for _ in range(3)} <= {0, 1, 2}


# --------------------------------------------------------------------------- one test per bad-input kind

POSTS_CASES = {
    "invalid_json": ('{"id": "p1", "account": ', "json", "invalid JSON: Expecting value at column 25"),
    "not_an_object": ("[1, 2]", "json", "expected a JSON object, got a list"),
    "missing_field": (post(1, caption=None) | {"caption": ...}, "caption", "missing required field"),
    "wrong_type_tags": (post(1, tags="lean"), "tags", "expected a list of strings, got a string"),
    "wrong_type_tag_item": (post(1, tags=["lean", 4]), "tags", "expected a list of strings, item 1 is an integer"),
    "wrong_type_caption": (post(1, caption=5), "caption", "expected a string, got an integer"),
    "wrong_type_image": (post(1, image=3), "image", "expected a string or null, got an integer"),
    "unknown_label": (post(1, drug=2), "drug", "unknown label 2; expected 0 or 1"),
    "unknown_label_string": (post(1, drug="yes"), "drug", 'unknown label "yes"; expected 0 or 1'),
    "bool_label": (post(1, drug=True), "drug", "expected 0 or 1, got true/false"),
    "bad_timestamp": (post(1, timestamp="yesterday"), "timestamp",
                      "not an ISO-8601 timestamp: 'yesterday' (expected e.g. 2016-03-01T23:45:00+00:00)"),
    "empty_id": (post(1, id=" "), "id", "must not be empty"),
    "dotdot_path": (post(1, image="../outside.png"), "image", "path '../outside.png' escapes ROOT ('..')"),
    "absolute_path": (post(1, image="/etc/passwd"), "image",
                      "absolute path '/etc/passwd'; image paths must be relative to ROOT"),
    "missing_image": (post(1, image="images/nope.png"), "image", "file not found: images/nope.png"),
    "directory_image": (post(1, image="images"), "image", "not a regular file: images"),
}


def _materialise(rec):
    if isinstance(rec, dict) and rec.get("caption", None) is ...:
        rec = {k: v for k, v in rec.items() if k != "caption"}
    return rec


@pytest.mark.parametrize("case", sorted(POSTS_CASES))
def test_bad_post_is_rejected_with_reason(root, case):
    rec, field, reason = POSTS_CASES[case]
    write_jsonl(root / "posts.jsonl", [post("good"), _materialise(rec)])
    loaded = load_posts(root)
    assert only_rejection(loaded) == Rejection("posts.jsonl", 2, field, reason)
    assert [r["id"] for r in loaded.records] == ["pgood"]
    assert str(loaded.rejections[0]) == f"posts.jsonl:2: {field}: {reason}"


def test_not_utf8_is_rejected(root):
    write_jsonl(root / "posts.jsonl", [post(1), b'{"id": "\xff"}'])
    assert only_rejection(load_posts(root)) == Rejection("posts.jsonl", 2, "json", "not valid UTF-8 (byte 9)")


def test_duplicate_id_is_rejected(root):
    write_jsonl(root / "posts.jsonl", [post(1), post(2), post(1, caption="again")])
    loaded = load_posts(root)
    assert only_rejection(loaded) == Rejection("posts.jsonl", 3, "id", "duplicate id 'p1' (first on line 1)")
    assert [r["caption"] for r in loaded.records] == ["sippin 💜"] * 2


def test_missing_file_is_one_rejection(root):
    assert only_rejection(load_web(root)) == Rejection(
        "web.jsonl", 0, "file", f"missing: {root / 'web.jsonl'} does not exist")


def test_unknown_web_class(root):
    write_jsonl(root / "web.jsonl", [{"id": "w1", "image": "images/ok.png", "class": "cocaine", "query": "coke"}])
    assert only_rejection(load_web(root)) == Rejection(
        "web.jsonl", 1, "class", "unknown label 'cocaine'; expected one of weed, pills, syrup, negative")


def account(name="alice", **kw):
    rec = {"username": name, "bio": "", "followers": 10, "following": 5, "expert1": 0, "expert2": 1}
    rec.update(kw)
    return rec


@pytest.mark.parametrize(
    "rec, field, reason",
    [
        (account(followers=-5), "followers", "negative count -5; expected a non-negative integer"),
        (account(following="12"), "following", "expected a non-negative integer, got a string"),
        (account(followers=2.5), "followers", "expected a non-negative integer, got a number"),
        (account(expert2=3), "expert2", "unknown label 3; expected 0 or 1"),
        (account(name="../x"), "username", "'../x' cannot name a timeline file (no '/', '\\', '..', spaces at the ends)"),
        (account(name="alice"), "username", "duplicate username 'alice' (first on line 1)"),
    ],
)
def test_bad_account_is_rejected(root, rec, field, reason):
    write_jsonl(root / "accounts.jsonl", [account(), rec])
    assert only_rejection(load_accounts(root)) == Rejection("accounts.jsonl", 2, field, reason)


def test_timeline_of_unknown_account_is_rejected_line_by_line(root):
    write_jsonl(root / "accounts.jsonl", [account()])
    write_jsonl(root / "timelines" / "alice.jsonl", [post(1, drug=None)])
    write_jsonl(root / "timelines" / "ghost.jsonl", [post(1, account="ghost"), post(2, account="ghost")])
    loaded = load_accounts(root)
    reason = "timeline of account 'ghost', which is missing from accounts.jsonl"
    assert loaded.rejections == [Rejection("timelines/ghost.jsonl", i, "account", reason) for i in (1, 2)]
    assert len(loaded.records[0]["timeline"]) == 1
    assert loaded.counts["timelines/ghost.jsonl"] == [0, 2]


def test_timeline_of_a_rejected_account_says_so(root):
    write_jsonl(root / "accounts.jsonl", [account(), account("bob", followers=-1)])
    write_jsonl(root / "timelines" / "bob.jsonl", [post(1, account="bob")])
    loaded = load_accounts(root)
    assert loaded.rejections[1] == Rejection(
        "timelines/bob.jsonl", 1, "account", "timeline of account 'bob', whose record in accounts.jsonl was rejected (line 2)")


def test_timeline_post_of_another_account_is_rejected(root):
    write_jsonl(root / "accounts.jsonl", [account()])
    write_jsonl(root / "timelines" / "alice.jsonl", [post(1, account="bob")])
    assert only_rejection(load_accounts(root)) == Rejection(
        "timelines/alice.jsonl", 1, "account", "'bob' differs from the timeline's account 'alice'")


# --------------------------------------------------------------------------- bad image files


def _write(root: Path, rel: str, data: bytes) -> str:
    (root / rel).write_bytes(data)
    return rel


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("empty", lambda r: _write(r, "images/empty.png", b""), "empty file: images/empty.png"),
        ("text", lambda r: _write(r, "images/text.png", b"hello, not a picture"),
         "not an image (unrecognised format): images/text.png"),
        ("truncated_png", lambda r: _write(r, "images/t.png", png_bytes()[:300]), "truncated image file: images/t.png"),
        ("truncated_jpeg", lambda r: _write(r, "images/t.jpg", _jpeg()[:400]), "truncated image file: images/t.jpg"),
        ("bomb", lambda r: _write(r, "images/bomb.png", bomb_png(8000, 7000)),
         "decompression bomb: 8000x7000 = 56000000 pixels exceeds the limit of 50000000 "
         "(raise max_pixels if the image is genuine)"),
        ("bomb_caught_by_pillow", lambda r: _write(r, "images/huge.png", bomb_png(20000, 20000)),
         "decompression bomb: Image size (400000000 pixels) exceeds limit of 178956970 pixels, "
         "could be decompression bomb DOS attack."),
    ],
)
def test_bad_image_is_rejected(root, name, make, reason):
    rel = make(root)
    write_jsonl(root / "posts.jsonl", [post(1, image=rel)])
    assert only_rejection(load_posts(root)) == Rejection("posts.jsonl", 1, "image", reason)
    with pytest.raises(ImageError) as e:
        read_image(root, rel)
    assert str(e.value) == reason


def test_symlink_out_of_root_is_rejected(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(png_bytes())
    os.symlink(outside, root / "images" / "link.png")
    write_jsonl(root / "posts.jsonl", [post(1, image="images/link.png")])
    r = only_rejection(load_posts(root))
    assert (r.field, r.reason) == (
        "image", f"path 'images/link.png' is a symlink pointing outside ROOT (to {os.path.realpath(outside)})")


def test_symlink_inside_root_is_fine(root):
    os.symlink(root / "images" / "ok.png", root / "images" / "alias.png")
    write_jsonl(root / "posts.jsonl", [post(1, image="images/alias.png")])
    assert load_posts(root).rejections == []


def test_max_pixels_is_configurable(root):
    write_jsonl(root / "posts.jsonl", [post(1)])
    r = only_rejection(load_posts(root, max_pixels=100))
    assert r.reason == "decompression bomb: 16x12 = 192 pixels exceeds the limit of 100 (raise max_pixels if the image is genuine)"


# --------------------------------------------------------------------------- converted images


def _jpeg(arr: np.ndarray = PIXELS, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", **kw)
    return b.getvalue()


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _exif_rotated() -> bytes:
    im = Image.fromarray(PIXELS)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return _save(im, "PNG", exif=exif.tobytes())


CONVERSIONS = {
    "grayscale": (lambda: png_bytes(mode="L"), "image converted from grayscale (L)"),
    "cmyk": (lambda: _save(Image.fromarray(PIXELS).convert("CMYK"), "JPEG"), "image converted from CMYK (CMYK)"),
    "palette": (lambda: png_bytes(mode="P"), "image converted from palette (P)"),
    "rgba": (lambda: png_bytes(mode="RGBA"), "image converted from RGBA (RGBA)"),
    "16bit": (lambda: _save(Image.fromarray((PIXELS[..., 0].astype(np.uint16) * 257)), "PNG"),
              "image converted from 16-bit (I;16)"),
    "exif_rotated": (_exif_rotated, "image rotated by its EXIF orientation"),
}


@pytest.mark.parametrize("case", sorted(CONVERSIONS))
def test_odd_image_is_converted_not_rejected(root, case):
    make, oddity = CONVERSIONS[case]
    rel = _write(root, f"images/{case}.img", make())
    write_jsonl(root / "posts.jsonl", [post(1, image=rel)])
    loaded = load_posts(root)
    assert loaded.rejections == [] and len(loaded.records) == 1
    assert loaded.oddities == {oddity: 1}
    arr = read_image(root, rel)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert arr.shape[:2] == ((16, 12) if case == "exif_rotated" else (12, 16))


def test_conversions_keep_the_picture():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "g16.png").write_bytes(_save(Image.fromarray(PIXELS[..., 0].astype(np.uint16) * 257), "PNG"))
        assert np.array_equal(read_image(d, "g16.png")[..., 1], PIXELS[..., 0])  # scaled, not clipped
        rgba = np.zeros((4, 4, 4), np.uint8)
        rgba[..., 0] = 200
        rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
        (d / "a.png").write_bytes(_save(Image.fromarray(rgba, "RGBA"), "PNG"))
        out = read_image(d, "a.png")
        assert out[0, 0].tolist() == [200, 0, 0] and out[3, 3].tolist() == [255, 255, 255]
        (d / "r.png").write_bytes(_exif_rotated())
        # rotate 90 degrees clockwise: the first column, read bottom-up, becomes the first row
        assert np.array_equal(read_image(d, "r.png")[0], PIXELS[::-1, 0])
