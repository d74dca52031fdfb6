"""TFDS builders for the drugjax dataset format, in array_record, without TensorFlow.

Three builders read a dataset ROOT in the format of docs/data-format.md (the TFDS
"manual_dir"): :class:`PostsBuilder` (``posts.jsonl``), :class:`WebBuilder`
(``web.jsonl``) and :class:`AccountsBuilder` (``accounts.jsonl`` with each account's
timeline). Each writes one split, ``full``, in file order (folds come from the ``fold``
field, see :func:`drugjax.data.folds.fold_of`), in the ``array_record`` file format, and
is read with ``as_data_source()``: random access, no TensorFlow.

Records go through helper B's validation (:mod:`drugjax.data.schema`): rejected records
are left out, logged one by one (``file:line: field: reason``) and kept in the build's
metadata; the build fails with :class:`BuildError` only when the rejected share of a file
passes ``max_rejected`` (default 5 %).

:func:`prepare` is the one call the rest of drugjax uses: it builds (once, cached) and
returns ``{"posts", "web", "accounts"}`` data sources. With ``root=None`` it first writes
the embedded synthetic world (``drugjax.synthetic.world``) for the given preset and seed.

Examples (strings are ``str``, images are encoded bytes):

``posts``     id, account, image, caption, tags, comments, timestamp, query, drug,
              kind (int32, :mod:`drugjax.tasks` kind), fold (int32), json
``web``       id, image, class, query, kind, fold, json
``accounts``  username, bio, followers, following, expert1, expert2 (-1: not judged yet), fold,
              timeline (list of {id, image, caption, timestamp, drug (-1: unlabelled)}), json

``image`` holds encoded JPEG or PNG bytes (``b""`` for a post without an image) that
decode with Pillow to exactly the uint8 RGB array :func:`drugjax.data.schema.read_image`
returns: plain RGB JPEG/PNG files are stored as they are, anything that needed
conversion (grayscale, CMYK, palette, alpha, 16-bit, EXIF rotation) or is larger than
needed (shorter side above ``2 * image_size``) is stored as the converted, downscaled
PNG. ``json`` is the whole validated record (extra fields and ``_line`` included), so
nothing of the source file is lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core.constants import INCOMPLETE_PREFIX

from drugjax.errors import UserError, full_disk_reported
import drugjax
from drugjax.runtime.digest import digest_bytes
from drugjax.runtime.logs import quiet_absl
from drugjax.runtime.progress import Progress
from drugjax.runtime.runlock import process_alive
from drugjax.data import schema
from drugjax.data.folds import fold_of
from drugjax.runtime.textsafe import escape_controls
from drugjax.tasks import instagram_kind, web_kind

log = logging.getLogger(__name__)

SPLIT = "full"  # tfds reserves "all"
DEFAULT_MAX_REJECTED = 0.05
#: environment variable that overrides the default cache folder (~/.cache/drugjax)
DATA_DIR_ENV = "DRUGJAX_DATA_DIR"
_MAX_LISTED = 20  # rejections quoted in a BuildError (all of them are logged and stored)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The drugjax datasets are not downloadable (the paper's Instagram data is not public).
Pass a dataset ROOT in the drugjax format (docs/data-format.md) as the manual_dir:
ROOT/posts.jsonl, ROOT/web.jsonl, ROOT/accounts.jsonl, ROOT/timelines/<username>.jsonl
and the image files they reference. `python -m drugjax.data validate ROOT` checks it
first; `python -m drugjax.synthetic ROOT` writes a synthetic one.
"""


class BuildError(UserError, ValueError):
    """A build refused its input (too many rejected records, missing ROOT, ...)."""

    preescaped = True  # the data it quotes is escaped where the message is made


@dataclasses.dataclass(eq=False)
class DrugjaxConfig(tfds.core.BuilderConfig):
    """What a build was made from: a synthetic world (preset, seed) or a user ROOT.

    The config name encodes all of it, so each distinct input gets its own cached build.
    """

    source: str = "root"  # "synthetic" or "root"
    preset: str | None = None
    seed: int | None = None
    image_size: int = 96
    root: str | None = None
    fingerprint: str | None = None
    max_rejected: float = DEFAULT_MAX_REJECTED


def _world_name(preset: str, seed: int, image_size: int) -> str:
    from drugjax.synthetic import draw
    from drugjax.synthetic import world

    # The generator's version and a digest of its code are part of the name: a changed
    # generator makes new worlds instead of serving stale cached ones.
    code = digest_bytes(*(Path(module.__file__).read_bytes() for module in (world, draw)), length=8)
    return f"synthetic_{preset}_seed{seed}_{image_size}px_gen{world.GENERATOR_VERSION}_{code}"


def synthetic_config(preset: str, seed: int, image_size: int, max_rejected: float = DEFAULT_MAX_REJECTED) -> DrugjaxConfig:
    """The config of a build of the synthetic world ``(preset, seed, image_size)``."""
    return DrugjaxConfig(
        name=_world_name(preset, seed, image_size),
        description=f"drugjax synthetic world, preset {preset!r}, seed {seed}, {image_size} px images",
        source="synthetic",
        preset=preset,
        seed=int(seed),
        image_size=int(image_size),
        max_rejected=max_rejected,
    )


def root_config(root: str | Path, image_size: int, max_rejected: float = DEFAULT_MAX_REJECTED) -> DrugjaxConfig:
    """The config of a build of the user dataset at ``root`` in its current state."""
    root = Path(root).resolve()
    fp = fingerprint(root)
    return DrugjaxConfig(
        name=f"root_{fp[:16]}_{image_size}px",
        description=f"drugjax dataset at {root} (content fingerprint {fp[:16]}), {image_size} px",
        source="root",
        root=str(root),
        fingerprint=fp,
        image_size=int(image_size),
        max_rejected=max_rejected,
    )


def fingerprint(root: str | Path) -> str:
    """sha1 over the JSON-lines files' bytes and every other file's (path, size, mtime).

    Changes to any record or image give a new fingerprint, hence a new build.
    """
    root = Path(root)
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            path = Path(dirpath) / fn
            rel = path.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0")
            if fn.endswith(".jsonl"):
                h.update(path.read_bytes())
            else:
                st = path.stat()
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- images


def encode_image(root: Path, relpath: str | None, image_size: int) -> bytes:
    """Image bytes to store: the file itself when Pillow decodes it to what ``read_image``
    returns and it is not much larger than needed, else the converted, downscaled PNG."""
    if relpath is None:
        return b""
    max_short = 2 * image_size
    full = root / relpath
    with Image.open(full) as im:  # header only
        plain = (
            im.format in ("JPEG", "PNG")
            and im.mode == "RGB"
            and "transparency" not in im.info
            and im.getexif().get(0x0112, 1) in (1, None)
            and min(im.size) <= max_short
        )
    if plain:
        return full.read_bytes()
    img = Image.fromarray(schema.read_image(root, relpath))
    w, h = img.size
    if min(w, h) > max_short:
        scale = max_short / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- builders


def _record_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def _label(value) -> int:
    return -1 if value is None else int(value)


def _post_kind(drug) -> int:
    # -1: not labelled yet; the pipeline leaves records with a negative kind out.
    return -1 if drug is None else instagram_kind(drug)


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared parts: validation with a rejection limit, metadata, one ``full`` split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: drugjax format, array_record, one 'full' split with folds."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    FILE: str = ""  # the main JSON-lines file (relative to ROOT); prepare skips a missing optional one

    def __init__(self, *, config: DrugjaxConfig, **kwargs):
        super().__init__(config=config, **kwargs)

    # TFDS prints "Downloading and preparing dataset Unknown size (download: Unknown size,
    # ...)" and "... downloaded and prepared to ..." for every build; nothing is downloaded
    # here, so drugjax says what happens in its own log lines instead. (TFDS's private
    # hooks: should a later TFDS rename them, its banner comes back, nothing breaks.)
    def _log_download_bytes(self) -> None:
        log.info("building %s from the %s (once; cached in %s)", self.name,
                 self.builder_config.description.removeprefix("drugjax "), self.data_dir)

    def _log_download_done(self) -> None:
        log.info("built %s", self.name)

    def _features(self) -> dict:
        raise NotImplementedError

    def _load(self, root: Path) -> schema.Loaded:
        raise NotImplementedError

    def _example(self, root: Path, record: dict) -> dict:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: DrugjaxConfig = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip() + "\n\n" + cfg.description,
            features=tfds.features.FeaturesDict(self._features()),
            homepage="https://arxiv.org/abs/1605.02710",
            # File order is kept: index i of the data source is record i of the file.
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(
                drugjax_version=drugjax.__version__,
                builder_version=str(self.VERSION),
                source=cfg.source,
                preset=cfg.preset,
                seed=cfg.seed,
                image_size=cfg.image_size,
                root=cfg.root,
                fingerprint=cfg.fingerprint,
                max_rejected=cfg.max_rejected,
            ),
        )

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        loaded = self._load(root)
        _check_rejections(type(self).__name__, loaded, self.builder_config.max_rejected)
        md = self.info.metadata
        md["rejections"] = [r.to_json() for r in loaded.rejections]
        md["oddities"] = dict(loaded.oddities)
        md["counts"] = {k: list(v) for k, v in loaded.counts.items()}
        md.update(self._columns(loaded.records))
        world_file = root / "world.json"  # a synthetic world says how it was made
        if world_file.is_file():
            md["world"] = json.loads(world_file.read_text(encoding="utf-8"))
        return {SPLIT: self._generate_examples(root=root, records=loaded.records)}

    def _columns(self, records: list[dict]) -> dict:
        return {}

    def _generate_examples(self, root: Path, records: list[dict]) -> Iterator[tuple[int, dict]]:
        with Progress(len(records), f"building {self.name}", unit="record") as bar:
            for i, record in enumerate(records):
                yield i, self._example(root, record)
                bar.update()


def _check_rejections(builder: str, loaded: schema.Loaded, max_rejected: float) -> None:
    """Log every rejection; raise BuildError when the rejected share is too high.

    The share is taken over all the files a builder reads (accounts.jsonl and the
    timelines together): one bad line in a three-post timeline should not stop a build.
    """
    for r in loaded.rejections:
        log.warning("%s: rejected %s", builder, r)
    bad = len(loaded.rejections)
    total = bad + sum(good for good, _ in loaded.counts.values())
    if bad and bad / total > max_rejected:
        listed = [str(r) for r in loaded.rejections[:_MAX_LISTED]]
        more = bad - len(listed)
        files = escape_controls(", ".join(sorted({r.file for r in loaded.rejections})))
        raise BuildError(
            f"{builder}: {bad} of {total} records rejected ({bad / total:.1%}) in {files}, more than "
            f"the limit of {max_rejected:.1%} (max_rejected); the build stops so that bad data does "
            "not go unnoticed. Rejected:\n  " + "\n  ".join(listed)
            + (f"\n  ... and {more} more" if more > 0 else "")
            + "\nFix these records (`python -m drugjax.data validate ROOT --rejected PATH` lists "
            "them all) or raise the limit (train.py: data.max_rejected=0.1)."
        )


class PostsBuilder(_Builder):
    """Labelled Instagram posts found by hashtag search (posts.jsonl; Table 1 data)."""

    name = "drugjax_posts"
    FILE = schema.POSTS_FILE

    def _features(self):
        return {
            "id": tfds.features.Text(),
            "account": tfds.features.Text(),
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "caption": tfds.features.Text(),
            "tags": tfds.features.Sequence(tfds.features.Text()),
            "comments": tfds.features.Sequence(tfds.features.Text()),
            "timestamp": tfds.features.Text(),
            "query": tfds.features.Text(),
            "drug": tfds.features.Scalar(dtype=np.int32),
            "kind": tfds.features.Scalar(dtype=np.int32),
            "fold": tfds.features.Scalar(dtype=np.int32),
            "json": tfds.features.Text(),
        }

    def _load(self, root):
        return schema.load_posts(root)

    def _columns(self, records):
        return {
            "kind": [_post_kind(r["drug"]) for r in records],
            "fold": [fold_of(r["id"]) for r in records],
            "has_image": [r["image"] is not None for r in records],
        }

    def _example(self, root, r):
        return {
            "id": r["id"],
            "account": r["account"],
            "image": encode_image(root, r["image"], self.builder_config.image_size),
            "caption": r["caption"],
            "tags": r["tags"],
            "comments": r["comments"],
            "timestamp": r["timestamp"],
            "query": r["query"],
            "drug": _label(r["drug"]),
            "kind": _post_kind(r["drug"]),
            "fold": fold_of(r["id"]),
            "json": _record_json(r),
        }


class WebBuilder(_Builder):
    """Web-search images of weed, pills and syrup, and negatives (web.jsonl)."""

    name = "drugjax_web"
    FILE = schema.WEB_FILE

    def _features(self):
        return {
            "id": tfds.features.Text(),
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "class": tfds.features.Text(),
            "query": tfds.features.Text(),
            "kind": tfds.features.Scalar(dtype=np.int32),
            "fold": tfds.features.Scalar(dtype=np.int32),
            "json": tfds.features.Text(),
        }

    def _load(self, root):
        return schema.load_web(root)

    def _columns(self, records):
        return {
            "kind": [web_kind(r["class"]) for r in records],
            "fold": [fold_of(r["id"]) for r in records],
            "has_image": [True] * len(records),
        }

    def _example(self, root, r):
        return {
            "id": r["id"],
            "image": encode_image(root, r["image"], self.builder_config.image_size),
            "class": r["class"],
            "query": r["query"],
            "kind": web_kind(r["class"]),
            "fold": fold_of(r["id"]),
            "json": _record_json(r),
        }


class AccountsBuilder(_Builder):
    """Drug-related accounts, the two experts' dealer labels and each timeline."""

    name = "drugjax_accounts"
    FILE = schema.ACCOUNTS_FILE

    def _features(self):
        return {
            "username": tfds.features.Text(),
            "bio": tfds.features.Text(),
            "followers": tfds.features.Scalar(dtype=np.int64),
            "following": tfds.features.Scalar(dtype=np.int64),
            "expert1": tfds.features.Scalar(dtype=np.int32),
            "expert2": tfds.features.Scalar(dtype=np.int32),
            "fold": tfds.features.Scalar(dtype=np.int32),
            "timeline": tfds.features.Sequence(
                {
                    "id": tfds.features.Text(),
                    "image": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "caption": tfds.features.Text(),
                    "timestamp": tfds.features.Text(),
                    "drug": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            "json": tfds.features.Text(),
        }

    def _load(self, root):
        return schema.load_accounts(root)

    def _example(self, root, r):
        size = self.builder_config.image_size
        return {
            "username": r["username"],
            "bio": r["bio"],
            "followers": int(r["followers"]),
            "following": int(r["following"]),
            "expert1": _label(r["expert1"]),
            "expert2": _label(r["expert2"]),
            "fold": fold_of(r["username"]),
            "timeline": [
                {
                    "id": p["id"],
                    "image": encode_image(root, p["image"], size),
                    "caption": p["caption"],
                    "timestamp": p["timestamp"],
                    "drug": _label(p["drug"]),
                }
                for p in r["timeline"]
            ],
            "json": _record_json(r),
        }


BUILDERS: dict[str, type[_Builder]] = {"posts": PostsBuilder, "web": WebBuilder, "accounts": AccountsBuilder}


# --------------------------------------------------------------------------- sources


def _to_str(value: Any, key: str) -> Any:
    """tfds gives text as bytes and a sequence of dicts as a dict of lists; drugjax users
    get str and a list of dicts (images stay bytes)."""
    if key == "image":
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        columns = {k: _to_str(v, k) for k, v in value.items()}
        n = len(next(iter(columns.values()), []))
        return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    if isinstance(value, list):
        return [_to_str(v, key) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Source:
    """A built dataset: random access to its examples (``len``, ``[i]``).

    Attributes:
      root: the dataset ROOT it was built from (the synthetic world's folder, or the
        user's), as :func:`prepare` found it this time.
      metadata: what the build recorded (drugjax and builder version, source, preset,
        seed, image size, ROOT and fingerprint, rejections, oddities, per-file counts).
      rejections: the records left out, as :class:`drugjax.data.schema.Rejection`.
      columns: ``kind``, ``fold`` and image presence of every example (posts and web),
        so the loaders select records without reading images.
    """

    def __init__(self, data_source, metadata: dict, root: Path | None = None):
        self._source = data_source
        self.root = root
        self.metadata = dict(metadata)
        self.rejections = [schema.Rejection(**r) for r in self.metadata.get("rejections", [])]
        if "kind" in self.metadata:
            self.columns = schema.Columns(
                kind=np.asarray(self.metadata["kind"], np.int32),
                fold=np.asarray(self.metadata["fold"], np.int32),
                has_image=np.asarray(self.metadata["has_image"], bool),
            )
        else:
            self.columns = None

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a source of {len(self)} examples")
        return {k: _to_str(v, k) for k, v in self._source[int(index) % len(self)].items()}

    def __getitems__(self, indices) -> list[dict]:
        return [{k: _to_str(v, k) for k, v in r.items()} for r in self._source.__getitems__([int(i) for i in indices])]

    def __repr__(self) -> str:
        md = self.metadata
        what = f"preset={md.get('preset')}, seed={md.get('seed')}" if md.get("source") == "synthetic" else f"root={md.get('root')}"
        return f"Source({len(self)} examples, {what}, image_size={md.get('image_size')})"


# tfds warns on every builder made from a config object: that is how all drugjax builds
# are made, so it says nothing.
quiet_absl("Using custom data configuration")


def build(
    name: str, root: str | Path, config: DrugjaxConfig, data_dir: str | Path
) -> Source:
    """Build (or reuse) one dataset of ``root`` and return its source.

    tfds writes into a temporary folder and renames it when complete, so an interrupted
    build is never mistaken for a finished one: the next call builds again (and removes
    what the interrupted one left, :func:`_build_lock`).
    """
    cls = BUILDERS[name]
    config_dir = Path(data_dir) / cls.name / config.name
    # A finished build is read without the lock, so a shared data folder that is read
    # only (a cluster's prepared datasets) serves as it did before there was one.
    finished = (config_dir / str(cls.VERSION) / "dataset_info.json").is_file()
    # tfds draws several nested progress bars per split, which swamp train.py's own
    # console (its download banner: _Builder._log_download_bytes).
    tfds.display_progress_bar(False)
    try:
        with contextlib.nullcontext() if finished else _build_lock(config_dir, name), \
                full_disk_reported(f"the {name} dataset into {data_dir}"):
            # Made under the lock: a builder made before another process finished reads
            # no dataset_info of it (and would open the build as TFRecord files).
            builder = cls(config=config, data_dir=str(data_dir))
            builder.download_and_prepare(
                file_format="array_record",
                download_config=tfds.download.DownloadConfig(manual_dir=str(root)),
            )
    finally:
        tfds.display_progress_bar(True)
    return Source(builder.as_data_source()[SPLIT], builder.info.metadata, root=Path(root))


BUILD_LOCK = ".drugjax-build.lock"


@contextlib.contextmanager
def _build_lock(config_dir: Path, name: str) -> Iterator[None]:
    """Build one dataset config at a time: hold ``config_dir/.drugjax-build.lock``.

    A second process building the same dataset waits, then finds it built and reuses it
    (without the lock both would build, and tfds's rename of the second would fail on
    the first's folder). Holding the lock also tells what a killed build left: tfds
    writes into ``incomplete.<random>_<version>`` and removes it on an exception, not on
    a SIGKILL; with no other build running, every such folder is a dead build's, and is
    removed. The lock is the kernel's (flock), so it dies with its holder, however it
    dies."""
    config_dir.mkdir(parents=True, exist_ok=True)
    with open(config_dir / BUILD_LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process building %s into %s", name, config_dir)
            fcntl.flock(lock, fcntl.LOCK_EX)
        for leftover in config_dir.glob(f"{INCOMPLETE_PREFIX}*"):
            log.info("removing %s, left by a build that was killed", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        yield  # the lock goes with the file's closing


def default_data_dir() -> Path:
    """``$DRUGJAX_DATA_DIR``, else ``~/.cache/drugjax``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "drugjax"


def synthetic_root(preset: str, seed: int, image_size: int, data_dir: str | Path) -> Path:
    """The synthetic world ``(preset, seed, image_size)``, generated on first use.

    It is written to a temporary folder, marked complete and only then renamed into
    place, so a generation that was interrupted is never used; concurrent processes
    generating the same world agree (it is deterministic) and one rename wins.
    """
    from drugjax.synthetic import world

    if preset not in world.PRESETS:
        raise BuildError(f"no synthetic world preset {preset!r}; the presets are {', '.join(sorted(world.PRESETS))}")
    worlds = Path(data_dir) / "synthetic"
    final = worlds / _world_name(preset, seed, image_size)
    if (final / ".complete").is_file():
        return final
    if final.exists():  # not ours to trust: a leftover without the completion mark
        shutil.rmtree(final)
    worlds.mkdir(parents=True, exist_ok=True)
    _remove_killed_builds(worlds, final.name)
    tmp = worlds / f".{final.name}.partial-{socket.gethostname()}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    log.info("generating the synthetic world %s (first use)", final)
    world.generate(tmp, preset=preset, seed=seed, image_size=image_size)
    (tmp / ".complete").write_text(json.dumps({"preset": preset, "seed": seed, "image_size": image_size}))
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / ".complete").is_file():
            raise
        shutil.rmtree(tmp)  # another process finished first with the same world
    return final


def _remove_killed_builds(worlds: Path, name: str) -> None:
    """Remove what builds of world ``name`` on this host left when they were killed: the
    partial world and the generator's temporary folder beside it
    (``[.].NAME.partial-HOST-PID[.tmp-...]``), where process PID is gone. A live build's,
    and other hosts' (on a shared file system), are left alone."""
    marker = f"{name}.partial-{socket.gethostname()}-"
    for leftover in worlds.iterdir():
        rest = leftover.name.lstrip(".")
        if not rest.startswith(marker):
            continue
        pid = rest[len(marker):].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def prepare(
    root: str | Path | None = None,
    *,
    preset: str = "small",
    seed: int = 0,
    image_size: int = 96,
    data_dir: str | Path | None = None,
    max_rejected: float = DEFAULT_MAX_REJECTED,
) -> dict[str, Source]:
    """Build (once; cached) and open the datasets of ``root``.

    Args:
      root: a dataset ROOT in the drugjax format; None for the embedded synthetic world
        of ``preset`` and ``seed``, generated on first use.
      preset, seed: the synthetic world (ignored when ``root`` is given).
      image_size: the model's input size; synthetic images are drawn at this size, and
        stored images are downscaled to a shorter side of at most twice it.
      data_dir: cache folder (default ``$DRUGJAX_DATA_DIR`` or ``~/.cache/drugjax``).
        Builds are keyed by preset, seed and image size, or by the ROOT's content
        fingerprint, so a changed seed, preset or dataset builds anew.
      max_rejected: largest share of rejected records per file before a build fails.

    Returns:
      ``{"posts": Source, "web": Source, "accounts": Source}``; ``web`` and ``accounts``
      are absent when a user ROOT has no ``web.jsonl`` / ``accounts.jsonl``.

    Raises:
      BuildError: ROOT is missing or has no posts.jsonl, or too many records are rejected.
    """
    if not 0 <= max_rejected <= 1:
        raise ValueError(f"max_rejected must be a share between 0 and 1, got {max_rejected!r}")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if root is None:
        root = synthetic_root(preset, seed, image_size, data_dir)
        config = synthetic_config(preset, seed, image_size, max_rejected)
    else:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise BuildError(f"dataset ROOT {root} is not a folder; see docs/data-format.md for the layout")
        if not (root / schema.POSTS_FILE).is_file():
            raise BuildError(f"{root / schema.POSTS_FILE} is missing; a dataset ROOT needs at least posts.jsonl")
        config = root_config(root, image_size, max_rejected)
    sources = {}
    for name, cls in BUILDERS.items():
        if name != "posts" and not (root / cls.FILE).is_file():
            log.info("%s has no %s: no %r dataset", root, cls.FILE, name)
            continue
        sources[name] = build(name, root, config, data_dir / "tfds")
    return sources
