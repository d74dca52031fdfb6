"""The on-disk dataset format (docs/data-format.md): loading with record-level validation.

A dataset ROOT holds ``posts.jsonl`` (labelled posts found by hashtag search),
``web.jsonl`` (web images of weed / pills / syrup and negatives), ``accounts.jsonl``
(drug-related accounts and the two experts' dealer labels), ``timelines/<username>.jsonl``
(each account's recent posts) and the image files they reference.

Every loader checks every record and keeps going: a bad record becomes a
:class:`Rejection` (``file:line: field: reason``), a good one is returned with all its
fields (extra ones too) plus ``"_line"``. Oddities that are accepted and repaired (a
timestamp without a UTC offset, an image that needs conversion to 8-bit RGB) are counted
in :attr:`Loaded.oddities`, never silently. Nothing here imports JAX: the loaders run in
data-preparation processes.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import io
import json
import os
import posixpath
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from drugjax.errors import UserError
from drugjax.runtime.textsafe import escape_controls

POSTS_FILE = "posts.jsonl"
WEB_FILE = "web.jsonl"
ACCOUNTS_FILE = "accounts.jsonl"
TIMELINES_DIR = "timelines"
WEB_CLASSES: tuple[str, ...] = ("weed", "pills", "syrup", "negative")

# Larger images are rejected as decompression bombs before any pixel is decoded. 50 MP is
# well above any photo a social network serves (Instagram: at most 1080 x 1350) and above
# a 40 MP camera, yet far below what exhausts memory when decoded to RGB (150 MB).
DEFAULT_MAX_PIXELS = 50_000_000

# Whole-file problems (file missing, unreadable) are reported on line 0.
FILE_LINE = 0


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Rejection:
    """One rejected record: ``file`` relative to ROOT, ``line`` 1-based (0: whole file)."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        # file names, fields and reasons quote the data: escaped for the terminal
        return escape_controls(f"{self.file}:{self.line}: {self.field}: {self.reason}")

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines form written by ``validate --rejected``."""
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Columns:
    """Per-record columns of a built source, what the loaders need to know about every record of a source, without its image."""

    kind: np.ndarray  # int32
    fold: np.ndarray  # int32
    has_image: np.ndarray  # bool


@dataclasses.dataclass
class Loaded:
    """Records that passed validation, the rejected ones, and accepted oddities."""

    records: list[dict]
    rejections: list[Rejection]
    oddities: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    # good / rejected record counts per file (relative to ROOT), for reports.
    counts: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def _count(self, file: str, good: int = 0, bad: int = 0) -> None:
        c = self.counts.setdefault(file, [0, 0])
        c[0] += good
        c[1] += bad


class ImageError(UserError, ValueError):
    """An image file that cannot be used; ``str(e)`` is the reason reported to the user."""


class _Bad(Exception):
    """A record-level problem: (field, reason)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------- timestamps


def parse_timestamp(value: str) -> tuple[_dt.datetime, bool]:
    """Parse an ISO-8601 timestamp; returns (aware datetime, had_offset).

    A timestamp without an offset is taken as UTC (the caller counts it as an oddity).
    Raises ``ValueError`` with a readable reason otherwise.
    """
    text = value.strip()
    # datetime.fromisoformat (3.11) accepts "Z", offsets, fractions and a space separator.
    try:
        ts = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not an ISO-8601 timestamp: {value!r} (expected e.g. 2016-03-01T23:45:00+00:00)"
        ) from None
    if ts.tzinfo is None:
        return ts.replace(tzinfo=_dt.timezone.utc), False
    return ts, True


def hour_of_day(timestamp: str) -> int:
    """The local hour (0-23) of a normalised timestamp, read in its own UTC offset.

    Posting hours are behaviour in the poster's day, so the offset a post carries is kept
    and the hour is *not* converted to UTC.
    """
    return parse_timestamp(timestamp)[0].hour


# --------------------------------------------------------------------------- field checks


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


def _require(rec: dict, field: str) -> Any:
    if field not in rec:
        raise _Bad(field, "missing required field")
    return rec[field]


def _check_str(rec: dict, field: str, *, nonempty: bool = False, nullable: bool = False):
    value = _require(rec, field)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        want = "a string or null" if nullable else "a string"
        raise _Bad(field, f"expected {want}, got {_json_type(value)}")
    if nonempty and not value.strip():
        raise _Bad(field, "must not be empty")
    return value


def _check_str_list(rec: dict, field: str) -> list[str]:
    value = _require(rec, field)
    if not isinstance(value, list):
        raise _Bad(field, f"expected a list of strings, got {_json_type(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _Bad(field, f"expected a list of strings, item {i} is {_json_type(item)}")
    return value


def _check_label(rec: dict, field: str, *, nullable: bool) -> int | None:
    value = _require(rec, field)
    if value is None and nullable:
        return None
    allowed = "0, 1 or null" if nullable else "0 or 1"
    # JSON true/false would pass an int check in Python; labels must be explicit 0/1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            raise _Bad(field, f"unknown label {json.dumps(value)}; expected {allowed}")
        raise _Bad(field, f"expected {allowed}, got {_json_type(value)}")
    if value not in (0, 1):
        raise _Bad(field, f"unknown label {value}; expected {allowed}")
    return value


def _check_count(rec: dict, field: str) -> int:
    value = _require(rec, field)
    if isinstance(value, bool) or not isinstance(value, int):
        # 1200.0 from a spreadsheet export is fine; 12.5 followers is not.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _Bad(field, f"expected a non-negative integer, got {_json_type(value)}")
    if value < 0:
        raise _Bad(field, f"negative count {value}; expected a non-negative integer")
    return value


def _check_timestamp(rec: dict, odd: collections.Counter) -> None:
    value = _check_str(rec, "timestamp", nonempty=True)
    try:
        ts, had_offset = parse_timestamp(value)
    except ValueError as e:
        raise _Bad("timestamp", str(e)) from None
    if not had_offset:
        odd["timestamp without offset (taken as UTC)"] += 1
    rec["timestamp"] = ts.isoformat()


# --------------------------------------------------------------------------- images


def _image_ref(root: Path, relpath: str) -> tuple[str, Path]:
    """Normalise an image path and resolve it safely inside ROOT; raises ImageError."""
    if not relpath.strip():
        raise ImageError("empty image path")
    if "\x00" in relpath:
        raise ImageError("image path contains a NUL character")
    posix = relpath.replace("\\", "/")
    if posix.startswith("/") or Path(relpath).is_absolute() or (len(posix) > 1 and posix[1] == ":"):
        raise ImageError(f"absolute path {relpath!r}; image paths must be relative to ROOT")
    norm = posixpath.normpath(posix)
    if norm == ".." or norm.startswith("../"):
        raise ImageError(f"path {relpath!r} escapes ROOT ('..')")
    root_real = Path(os.path.realpath(root))
    full = root / norm
    real = Path(os.path.realpath(full))
    if real != root_real and root_real not in real.parents:
        raise ImageError(f"path {relpath!r} is a symlink pointing outside ROOT (to {real})")
    if not full.exists():
        raise ImageError(f"file not found: {norm}")
    if not full.is_file():
        raise ImageError(f"not a regular file: {norm}")
    return norm, full


def _to_rgb(im: Image.Image, odd: collections.Counter | None) -> np.ndarray:
    """Decode ``im`` to uint8 (H, W, 3) RGB, counting each conversion in ``odd``."""

    def note(what: str) -> None:
        if odd is not None:
            odd[what] += 1

    transposed = ImageOps.exif_transpose(im)
    if transposed is not im and transposed is not None:
        # exif_transpose returns a copy even for orientation 1; count only real rotations.
        orientation = im.getexif().get(0x0112, 1)
        if orientation not in (1, None):
            note("image rotated by its EXIF orientation")
        im = transposed
    mode = im.mode
    if mode == "RGB":
        arr = np.asarray(im, dtype=np.uint8)
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: Pillow's convert("RGB") clips instead of scaling.
        raw = np.asarray(im).astype(np.int64)
        scale = 257 if raw.max(initial=0) <= 65535 else max(int(raw.max()) // 255, 1)
        grey = np.clip(raw // scale, 0, 255).astype(np.uint8)
        arr = np.repeat(grey[..., None], 3, axis=-1)
        note(f"image converted from 16-bit ({mode})")
    elif mode == "F":
        raw = np.nan_to_num(np.asarray(im, dtype=np.float64))
        hi = raw.max(initial=0.0)
        grey = np.clip(raw * (255.0 / hi if hi > 255 else (255.0 if hi <= 1.0 else 1.0)), 0, 255)
        arr = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
        note("image converted from floating point (F)")
    else:
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
            # Transparent pixels become white, as a browser shows them on a white page.
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im2 = Image.alpha_composite(white, rgba).convert("RGB")
        else:
            im2 = im.convert("RGB")
        arr = np.asarray(im2, dtype=np.uint8)
        names = {"L": "grayscale", "1": "black-and-white", "P": "palette", "CMYK": "CMYK",
                 "RGBA": "RGBA", "LA": "grayscale+alpha", "PA": "palette+alpha",
                 "YCbCr": "YCbCr", "LAB": "LAB", "HSV": "HSV"}
        note(f"image converted from {names.get(mode, mode)} ({mode})")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"unexpected decoded shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _decode(full: Path, norm: str, max_pixels: int, odd: collections.Counter | None) -> np.ndarray:
    try:
        data = full.read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {norm}: {e.strerror or e}") from None
    if not data:
        raise ImageError(f"empty file: {norm}")
    with warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; both are bombs
        # here. Our own limit is checked from the header before any pixel is decoded.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(
                    f"decompression bomb: {w}x{h} = {w * h} pixels exceeds the limit of "
                    f"{max_pixels} (raise max_pixels if the image is genuine)"
                )
            if w < 1 or h < 1:
                raise ImageError(f"image has no pixels ({w}x{h}): {norm}")
            im.load()
            arr = _to_rgb(im, odd)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"decompression bomb: {e}") from None
        except UnidentifiedImageError:
            raise ImageError(f"not an image (unrecognised format): {norm}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            msg = str(e)
            if "truncated" in msg.lower() or isinstance(e, EOFError) or "broken data stream" in msg:
                raise ImageError(f"truncated image file: {norm}") from None
            raise ImageError(f"cannot decode {norm}: {msg}") from None
    return arr


def read_image(root: str | Path, relpath: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image of the dataset at ROOT as uint8 (H, W, 3) RGB.

    The path must stay inside ROOT (no ``..``, no absolute path, no symlink out). The
    image is EXIF-transposed and converted from grayscale, CMYK, palette, RGBA or 16-bit.
    Raises :class:`ImageError` with the reason on any bad file.
    """
    norm, full = _image_ref(Path(root), relpath)
    return _decode(full, norm, max_pixels, None)


def check_image(
    root: str | Path,
    relpath: str,
    oddities: collections.Counter | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str:
    """Validate one image fully (path, header, full decode); returns the normalised path.

    Conversions needed to reach 8-bit RGB are counted in ``oddities``. Raises
    :class:`ImageError` with the reason.
    """
    norm, full = _image_ref(Path(root), relpath)
    _decode(full, norm, max_pixels, oddities)
    return norm


class _ImageChecker:
    """Validates each distinct image once per load (records may share an image)."""

    def __init__(self, root: Path, max_pixels: int, decode: bool):
        self.root = root
        self.max_pixels = max_pixels
        self.decode = decode
        self.cache: dict[str, tuple[str | None, str | None, collections.Counter]] = {}

    def __call__(self, relpath: str, odd: collections.Counter) -> str:
        if relpath not in self.cache:
            local: collections.Counter = collections.Counter()
            try:
                norm, full = _image_ref(self.root, relpath)
                if self.decode:
                    _decode(full, norm, self.max_pixels, local)
                self.cache[relpath] = (norm, None, local)
            except ImageError as e:
                self.cache[relpath] = (None, str(e), local)
        norm, err, local = self.cache[relpath]
        if err is not None:
            raise _Bad("image", err)
        odd.update(local)
        return norm


# --------------------------------------------------------------------------- record kinds


def _check_post(rec: dict, odd: collections.Counter, images: _ImageChecker, *, labelled: bool) -> None:
    _check_str(rec, "id", nonempty=True)
    _check_str(rec, "account", nonempty=True)
    image = _check_str(rec, "image", nullable=True)
    _check_str(rec, "caption")
    tags = _check_str_list(rec, "tags")
    if any(t.startswith("#") for t in tags):
        odd["tag with a leading '#' (stripped)"] += 1
        rec["tags"] = [t.lstrip("#") for t in tags]
    _check_str_list(rec, "comments")
    _check_timestamp(rec, odd)
    _check_str(rec, "query")
    # A post found by hashtag search and not yet annotated carries drug null (the
    # importer writes it so); counted, and left out of training and evaluation.
    if labelled and _require(rec, "drug") is None:
        odd["post not labelled yet (drug null; left out of training and evaluation)"] += 1
    else:
        _check_label(rec, "drug", nullable=not labelled)
    if image is not None:
        rec["image"] = images(image, odd)


def _check_web(rec: dict, odd: collections.Counter, images: _ImageChecker) -> None:
    _check_str(rec, "id", nonempty=True)
    image = _check_str(rec, "image", nonempty=True)
    cls = _require(rec, "class")
    if not isinstance(cls, str):
        raise _Bad("class", f"expected a string, got {_json_type(cls)}")
    if cls not in WEB_CLASSES:
        raise _Bad("class", f"unknown label {cls!r}; expected one of {', '.join(WEB_CLASSES)}")
    _check_str(rec, "query")
    rec["image"] = images(image, odd)


def _check_account(rec: dict, odd: collections.Counter) -> None:
    name = _check_str(rec, "username", nonempty=True)
    if "/" in name or "\\" in name or name in (".", "..") or name != name.strip():
        raise _Bad("username", f"{name!r} cannot name a timeline file (no '/', '\\', '..', spaces at the ends)")
    _check_str(rec, "bio")
    _check_count(rec, "followers")
    _check_count(rec, "following")
    for f in ("followers", "following"):
        v = rec[f]
        if isinstance(v, float):
            rec[f] = int(v)
    # null: the experts have not judged this account yet (imported, not annotated).
    unlabelled = False
    for field in ("expert1", "expert2"):
        if _require(rec, field) is None:
            unlabelled = True
        else:
            _check_label(rec, field, nullable=False)
    if unlabelled:
        odd["account not labelled yet by both experts (expert1/expert2 null)"] += 1


# --------------------------------------------------------------------------- JSON lines


def _read_jsonl(
    root: Path,
    rel: str,
    out: Loaded,
    check: Callable[[dict, collections.Counter], None],
    *,
    seen_ids: dict[str, int] | None = None,
    id_field: str = "id",
) -> list[dict]:
    """Parse and check one JSON-lines file, appending rejections to ``out``."""
    path = root / rel
    good: list[dict] = []
    if not path.is_file():
        out.rejections.append(Rejection(rel, FILE_LINE, "file", f"missing: {path} does not exist"))
        out._count(rel, bad=1)
        return good
    try:
        raw = path.read_bytes()
    except OSError as e:
        out.rejections.append(Rejection(rel, FILE_LINE, "file", f"cannot read: {e.strerror or e}"))
        out._count(rel, bad=1)
        return good
    seen = {} if seen_ids is None else seen_ids
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for lineno, bline in enumerate(lines, start=1):
        bline = bline.rstrip(b"\r")
        if lineno == 1 and bline.startswith(b"\xef\xbb\xbf"):
            bline = bline[3:]  # a UTF-8 byte-order mark from some editors
        if not bline.strip():
            out.oddities["blank line (skipped)"] += 1
            continue
        try:
            text = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            out.rejections.append(Rejection(rel, lineno, "json", f"not valid UTF-8 (byte {e.start + 1})"))
            out._count(rel, bad=1)
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            out.rejections.append(Rejection(rel, lineno, "json", f"invalid JSON: {e.msg} at column {e.colno}"))
            out._count(rel, bad=1)
            continue
        if not isinstance(rec, dict):
            out.rejections.append(
                Rejection(rel, lineno, "json", f"expected a JSON object, got {_json_type(rec)}")
            )
            out._count(rel, bad=1)
            continue
        local: collections.Counter = collections.Counter()
        try:
            check(rec, local)
            key = rec[id_field]
            if key in seen:
                raise _Bad(id_field, f"duplicate {id_field} {key!r} (first on line {seen[key]})")
        except _Bad as e:
            out.rejections.append(Rejection(rel, lineno, e.field, e.reason))
            out._count(rel, bad=1)
            continue
        seen[key] = lineno
        out.oddities.update(local)
        rec["_line"] = lineno
        good.append(rec)
        out._count(rel, good=1)
    return good


def load_posts(
    root: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, decode_images: bool = True
) -> Loaded:
    """Load and validate ``ROOT/posts.jsonl`` (``drug`` 0 or 1; null = not labelled yet, counted).

    ``decode_images=False`` checks image paths and existence only (fast, for tooling that
    decodes later anyway); the default decodes every image fully.
    """
    root = Path(root)
    out = Loaded([], [])
    images = _ImageChecker(root, max_pixels, decode_images)
    out.records = _read_jsonl(
        root, POSTS_FILE, out, lambda r, o: _check_post(r, o, images, labelled=True)
    )
    return out


def load_web(
    root: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, decode_images: bool = True
) -> Loaded:
    """Load and validate ``ROOT/web.jsonl`` (class weed / pills / syrup / negative)."""
    root = Path(root)
    out = Loaded([], [])
    images = _ImageChecker(root, max_pixels, decode_images)
    out.records = _read_jsonl(root, WEB_FILE, out, lambda r, o: _check_web(r, o, images))
    return out


def load_accounts(
    root: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, decode_images: bool = True
) -> Loaded:
    """Load ``ROOT/accounts.jsonl`` and each account's ``timelines/<username>.jsonl``.

    Each account record gets ``"timeline"``: its validated timeline posts in file order
    (``drug`` may be null there). Timeline files of accounts missing from accounts.jsonl
    are rejected line by line; an account without a timeline file is kept with an empty
    timeline and counted as an oddity.
    """
    root = Path(root)
    out = Loaded([], [])
    out.records = _read_jsonl(root, ACCOUNTS_FILE, out, _check_account, id_field="username")
    images = _ImageChecker(root, max_pixels, decode_images)
    by_name = {rec["username"]: rec for rec in out.records}
    # Usernames on rejected accounts.jsonl lines, so their timelines say why they are out.
    rejected_names: dict[str, int] = {}
    bad_lines = {r.line for r in out.rejections if r.file == ACCOUNTS_FILE and r.line > 0}
    if bad_lines:
        for lineno, bline in enumerate((root / ACCOUNTS_FILE).read_bytes().split(b"\n"), start=1):
            if lineno in bad_lines:
                try:
                    name = json.loads(bline.decode("utf-8")).get("username")
                except (ValueError, AttributeError):
                    continue
                if isinstance(name, str) and name not in by_name:
                    rejected_names.setdefault(name, lineno)
    tdir = root / TIMELINES_DIR
    files = sorted(p for p in tdir.glob("*.jsonl") if p.is_file()) if tdir.is_dir() else []
    if tdir.is_dir():
        # Not silently ignored: a stray "alice.json" is most likely a misnamed timeline.
        stray = sum(1 for p in tdir.iterdir() if not (p.is_file() and p.name.endswith(".jsonl")))
        if stray:
            out.oddities["entry in timelines/ that is not a <username>.jsonl file (ignored)"] += stray
    for path in files:
        name = path.name[: -len(".jsonl")]
        rel = f"{TIMELINES_DIR}/{path.name}"
        if name not in by_name:
            if name in rejected_names:
                reason = (f"timeline of account {name!r}, whose record in {ACCOUNTS_FILE} was rejected "
                          f"(line {rejected_names[name]})")
            else:
                reason = f"timeline of account {name!r}, which is missing from {ACCOUNTS_FILE}"
            n = 0
            for lineno, bline in enumerate(path.read_bytes().split(b"\n"), start=1):
                if bline.strip():
                    n += 1
                    out.rejections.append(Rejection(rel, lineno, "account", reason))
            out._count(rel, bad=n)
            continue

        def check(rec: dict, odd: collections.Counter, _name: str = name) -> None:
            _check_post(rec, odd, images, labelled=False)
            if rec["account"] != _name:
                raise _Bad("account", f"{rec['account']!r} differs from the timeline's account {_name!r}")

        by_name[name]["timeline"] = _read_jsonl(root, rel, out, check)
    for rec in out.records:
        if "timeline" not in rec:
            rec["timeline"] = []
            out.oddities["account without a timeline file"] += 1
    return out
