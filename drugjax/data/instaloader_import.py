"""Import folders written by Instaloader 4.x into a dataset ROOT (docs/data-format.md).

``python -m drugjax.data import-instaloader SRC... --out ROOT``. A hashtag folder
(``instaloader "#xans"`` writes ``#xans/``) becomes posts in ``posts.jsonl`` with
``query`` = the hashtag and ``drug`` null until labelled; a profile folder
(``instaloader alice`` writes ``alice/``) becomes ``timelines/alice.jsonl`` and a line of
``accounts.jsonl`` (bio and counts from ``alice_<id>.json.xz``, expert labels null).

The metadata files are read as plain JSON, not through Instaloader's classes: their
properties fetch missing fields from Instagram, and an import must never touch the
network. Instaloader itself is therefore not needed to import (only to download).

What this never does: write into a source folder; overwrite a file in ROOT that it did
not create; rewrite a record already in ROOT (labels included). Every post that is not
imported is counted and listed with the file and the reason; the rest goes on.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import filecmp
import json
import lzma
import os
import re
import shutil
import unicodedata
from pathlib import Path

from drugjax.errors import UserError
from drugjax.data import rootfiles, schema
from drugjax.data.pseudonym import Pseudonymizer
from drugjax.runtime import atomic
from drugjax.runtime.textsafe import escape_controls

# Instaloader's hashtag pattern (instaloader/structures.py, ``_hashtag_regex``, MIT
# licence), applied as ``Post.caption_hashtags`` applies it: to the NFC-normalised,
# lowercased caption.
HASHTAG_REGEX = re.compile(r"(?:#)((?:\w){1,150})")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov")
# Where imported pictures go, named by post id; drugjax owns this folder.
IMAGES_SUBDIR = "images/instagram"
# Records what an import into ROOT was (pseudonymised or not, with which key).
MARKER_FILE = "instaloader_import.json"

# Shortcodes are base64url; usernames letters, digits, '.' and '_'. Anything else in a
# metadata file would end up in a file name, so it is refused rather than trusted.
_SHORTCODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_USERNAME = re.compile(r"[A-Za-z0-9._]{1,64}")
_PROFILE_PIC = re.compile(r".*_profile_pic\.(jpg|jpeg|png|webp)$")


class ImportRootError(UserError):
    """A problem that stops the whole import (bad ROOT, mixed keys); nothing was written."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing that was not imported: ``path`` (as the user passed it) and the reason."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{escape_controls(self.path)}: {escape_controls(self.reason)}"


@dataclasses.dataclass
class ImportReport:
    """What an import did: counts by kind, and every problem."""

    root: Path
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    key_created: Path | None = None

    def problem(self, path: Path | str, reason: str, posts: int = 1) -> None:
        self.problems.append(Problem(str(path), reason))
        self.counts["posts not imported (see problems)"] += posts


# --------------------------------------------------------------------------- reading Instaloader files


@dataclasses.dataclass
class _Meta:
    path: Path  # the metadata file
    base: str  # file name without .json / .json.xz, e.g. 2016-03-02_00-00-00_UTC
    node_type: str
    node: dict


def _load_metadata(path: Path) -> dict:
    """The JSON structure of a ``.json`` / ``.json.xz`` file; ValueError with the reason."""
    try:
        if path.name.endswith(".xz"):
            with lzma.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except (lzma.LZMAError, EOFError) as e:
        raise ValueError(f"truncated or corrupt .json.xz ({e}); download this post again with Instaloader") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start + 1})") from None
    except OSError as e:
        raise ValueError(f"cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not (isinstance(data, dict) and isinstance(data.get("node"), dict)
            and isinstance(data.get("instaloader"), dict) and "node_type" in data["instaloader"]):
        raise ValueError("not an Instaloader metadata file (no 'node' and 'instaloader.node_type'; "
                         "written by Instaloader 4.x?)")
    return data


def _metadata_base(name: str) -> str | None:
    if name.endswith("_comments.json"):
        return None
    for ext in (".json.xz", ".json"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return None


@dataclasses.dataclass
class _Folder:
    path: Path
    posts: list[_Meta]
    profiles: list[_Meta]
    files: list[Path]
    failed_bases: list[str]


def _scan(src: Path, report: ImportReport) -> _Folder | None:
    """Read every metadata file of one Instaloader folder; problems go to ``report``."""
    if not src.is_dir():
        what = "not a folder" if src.exists() else "no such folder"
        report.problem(src, f"{what}; pass the folders Instaloader wrote (one per target, e.g. '#xans' "
                            f"or 'alice'; quote '#xans' in the shell, where # starts a comment)", posts=0)
        return None
    files = sorted(p for p in src.iterdir() if p.is_file())
    metas: dict[str, _Meta] = {}
    n_metadata_files = 0
    failed: list[str] = []  # bases whose metadata could not be read (already listed)
    for path in files:
        base = _metadata_base(path.name)
        if base is None:
            continue
        n_metadata_files += 1
        if base in metas:  # both X.json and X.json.xz: one is enough
            report.counts["duplicate metadata files (.json beside .json.xz) ignored"] += 1
            continue
        try:
            data = _load_metadata(path)
        except ValueError as e:
            report.problem(path, str(e))
            failed.append(base)
            continue
        metas[base] = _Meta(path, base, str(data["instaloader"]["node_type"]), data["node"])
    posts = [m for m in metas.values() if m.node_type == "Post"]
    profiles = [m for m in metas.values() if m.node_type == "Profile"]
    for m in metas.values():
        if m.node_type == "Hashtag":
            report.counts["hashtag metadata files (not posts) read"] += 1
        elif m.node_type == "FrozenNodeIterator":
            report.counts["Instaloader resume files ignored"] += 1
        elif m.node_type not in ("Post", "Profile"):
            report.problem(m.path, f"a {m.node_type} (stories and highlights are not posts); not imported")
    if not n_metadata_files:
        hint = ""
        subs = [d for d in sorted(src.iterdir()) if d.is_dir()
                and any(_metadata_base(f.name) for f in d.iterdir() if f.is_file())]
        if subs:
            hint = f"; it holds {len(subs)} folders that look like Instaloader output: pass those instead ({src}/*)"
        elif any(f.suffix.lower() in IMAGE_EXTENSIONS for f in files):
            hint = ("; it has pictures but no metadata: download without --no-metadata-json (the metadata "
                    "gives each post its id)")
        report.problem(src, "not an Instaloader folder: no <date>_UTC.json.xz or .json metadata files" + hint,
                       posts=0)
        return None
    return _Folder(src, posts, profiles, files, failed)


# --------------------------------------------------------------------------- one post


def _dig(value, *keys):
    """``value[k1][k2]...`` through dicts and lists, or None where the layout differs."""
    for k in keys:
        if isinstance(k, int) and isinstance(value, list) and -len(value) <= k < len(value):
            value = value[k]
        elif isinstance(k, str) and isinstance(value, dict):
            value = value.get(k)
        else:
            return None
    return value


def _caption(meta: _Meta) -> str:
    node = meta.node
    edges = _dig(node, "edge_media_to_caption", "edges")
    if isinstance(edges, list):
        text = _dig(edges, 0, "node", "text")
        return unicodedata.normalize("NFC", text) if isinstance(text, str) else ""
    cap = node.get("caption")
    if isinstance(cap, dict):
        cap = cap.get("text")
    if isinstance(cap, str):
        return unicodedata.normalize("NFC", cap)
    # Neither form in the metadata: the caption file Instaloader writes beside it.
    txt = meta.path.with_name(meta.base + ".txt")
    if txt.is_file():
        return unicodedata.normalize("NFC", txt.read_text(encoding="utf-8", errors="replace").rstrip("\n"))
    return ""


def caption_hashtags(caption: str) -> list[str]:
    """Hashtags of a caption, lowercased, without '#', as Instaloader's ``Post.caption_hashtags``."""
    return HASHTAG_REGEX.findall(unicodedata.normalize("NFC", caption).lower())


def _comments(meta: _Meta) -> list[str]:
    """Texts of each comment and each answer, in file order; ValueError with the reason."""
    path = meta.path.with_name(meta.base + "_comments.json")
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name}: not readable as Instaloader's comments JSON ({e})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path.name}: expected a list of comments, got {type(data).__name__}")
    texts = []
    for i, c in enumerate(data):
        if not (isinstance(c, dict) and isinstance(c.get("text"), str)):
            raise ValueError(f"{path.name}: comment {i} has no text")
        texts.append(c["text"])
        answers = c.get("answers") or []
        if not isinstance(answers, list):
            raise ValueError(f"{path.name}: the answers to comment {i} are not a list")
        for a in answers:
            if not (isinstance(a, dict) and isinstance(a.get("text"), str)):
                raise ValueError(f"{path.name}: an answer to comment {i} has no text")
            texts.append(a["text"])
    return texts


def _media_files(meta: _Meta, files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Pictures (``<base>.jpg`` or ``<base>_1.jpg``, ``_2.jpg``... in order) and videos of a post."""
    pat = re.compile(re.escape(meta.base) + r"(?:_(\d+))?(\.[A-Za-z0-9]+)$")
    pics, vids = [], []
    for f in files:
        m = pat.fullmatch(f.name)
        if not m:
            continue
        ext = m.group(2).lower()
        key = (int(m.group(1)) if m.group(1) else 0, f)
        if ext in IMAGE_EXTENSIONS:
            pics.append(key)
        elif ext in VIDEO_EXTENSIONS:
            vids.append(key)
    return [f for _, f in sorted(pics)], [f for _, f in sorted(vids)]


def _owner(node: dict) -> tuple[str | None, str | None]:
    owner = node.get("owner") if isinstance(node.get("owner"), dict) else {}
    name = owner.get("username")
    oid = owner.get("id", owner.get("pk"))
    return (name.lower() if isinstance(name, str) else None), (str(oid) if oid is not None else None)


def _likes(node: dict) -> int | None:
    for v in (_dig(node, "edge_media_preview_like", "count"), _dig(node, "edge_liked_by", "count"),
              node.get("like_count")):
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


@dataclasses.dataclass
class _Post:
    record: dict
    pictures: list[Path]  # source files, in record["images"] order


def _convert_post(meta: _Meta, files: list[Path], query: str, account: str | None,
                  pseudo: Pseudonymizer | None, report: ImportReport) -> _Post | None:
    """One Instaloader post as a drugjax record (image paths still to be copied)."""
    node = meta.node
    shortcode = node.get("shortcode", node.get("code"))
    if not isinstance(shortcode, str) or not _SHORTCODE.fullmatch(shortcode):
        report.problem(meta.path, f"no usable shortcode in the metadata (got {shortcode!r})")
        return None
    taken = node.get("taken_at_timestamp", node.get("date"))
    try:
        if isinstance(taken, bool):
            raise TypeError
        timestamp = _dt.datetime.fromtimestamp(taken, _dt.timezone.utc).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        report.problem(meta.path, f"no usable taken_at_timestamp in the metadata (got {taken!r})")
        return None
    name, oid = _owner(node)
    if account is None:  # hashtag post: the owner in the metadata
        if name is None and oid is None:
            report.problem(meta.path, "the metadata names no owner (owner.username / owner.id)")
            return None
        if name is None:
            report.counts["posts whose metadata has only the owner's id (account = that id)"] += 1
        account = name if name is not None else oid
    elif name is not None and name != account:
        report.problem(meta.path, f"post of {name!r} in the profile folder of {account!r} (tagged or "
                                  f"reposted?); a timeline holds only the account's own posts")
        return None
    if not _USERNAME.fullmatch(account) or account in (".", ".."):
        report.problem(meta.path, f"unusable owner username {account!r}")
        return None
    pictures, videos = _media_files(meta, files)
    report.counts["videos skipped (.mp4; their thumbnails are imported as pictures)"] += len(videos)
    if not pictures:
        report.problem(meta.path, f"picture missing: no {meta.base}.jpg (or {meta.base}_1.jpg...) beside the "
                                  f"metadata; download the post again with Instaloader (pictures on) and re-run")
        return None
    for pic in pictures:
        try:
            schema.check_image(pic.parent, pic.name)
        except schema.ImageError as e:
            report.problem(pic, f"{e}; download the post again with Instaloader and re-run")
            return None
    try:
        comments = _comments(meta)
    except ValueError as e:
        report.problem(meta.path, str(e))
        return None
    caption = _caption(meta)
    tags = caption_hashtags(caption)
    location = node.get("location")
    typename = node.get("__typename")
    record = {
        "id": shortcode,
        "account": account,
        "image": None,
        "caption": caption,
        "tags": tags,
        "comments": comments,
        "timestamp": timestamp,
        "query": query,
        "drug": None,
        # extra fields (kept by the loaders, not used by the models)
        "likes": _likes(node),
        "is_video": bool(node.get("is_video", False)),
        "typename": typename if isinstance(typename, str) else None,
        "location": _dig(location, "name") if isinstance(_dig(location, "name"), str) else None,
    }
    if pseudo is not None:
        record["id"] = pseudo.post_id(shortcode)
        record["account"] = pseudo.username(account)
        record["caption"] = pseudo.text(caption)
        record["comments"] = [pseudo.text(c) for c in comments]
        # A place name can point at a person as well as a username does.
        del record["location"]
    return _Post(record, pictures)


# --------------------------------------------------------------------------- ROOT


class _RootFile:
    """One JSON-lines file of ROOT: its existing lines (kept as they are) and new ones."""

    def __init__(self, path: Path, key: str):
        self.path = path
        self.lines = rootfiles.read_lines(path)
        self.keys: set[str] = set()
        for line in self.lines:
            rec = rootfiles.parse_line(line)
            if rec is not None and isinstance(rec.get(key), str):
                self.keys.add(rec[key])
        self.new: list[dict] = []

    def add(self, record: dict, key: str) -> None:
        self.keys.add(record[key])
        self.new.append(record)

    def write(self) -> None:
        if self.new:
            rootfiles.write_lines(self.path, self.lines + [rootfiles.json_line(r) for r in self.new])


def _place_pictures(post: _Post, root: Path, copy: bool, report: ImportReport) -> bool:
    """Link or copy a post's pictures to ROOT/images/instagram/<id>[_n].<ext>."""
    rels = []
    for i, src in enumerate(post.pictures):
        suffix = "" if len(post.pictures) == 1 else f"_{i + 1}"
        rel = f"{IMAGES_SUBDIR}/{post.record['id']}{suffix}{src.suffix.lower()}"
        dest = root / rel
        if dest.exists():
            if not filecmp.cmp(src, dest, shallow=False):
                report.problem(src, f"{dest} already exists with other content; it is not overwritten "
                                    f"(move it away and re-run)")
                return False
            report.counts["pictures already in ROOT (same bytes, reused)"] += 1
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            linked = False
            if not copy:
                try:
                    os.link(src, dest)
                    linked = True
                except OSError:  # another file system, or links not allowed: copy
                    pass
            if not linked:
                with open(src, "rb") as source, atomic.replacing(dest) as copied:
                    shutil.copyfileobj(source, copied)
            report.counts["pictures hard-linked into ROOT" if linked else "pictures copied into ROOT"] += 1
        rels.append(rel)
    post.record["image"] = rels[0]
    post.record["images"] = rels
    return True


def _check_root(root: Path, sources: list[Path], pseudo: Pseudonymizer | None) -> None:
    real_root = Path(os.path.realpath(root))
    for src in sources:
        s = Path(os.path.realpath(src))
        if s == real_root or s in real_root.parents or real_root in s.parents:
            raise ImportRootError(f"ROOT {root} and the Instaloader folder {src} overlap; import into a "
                               f"separate folder (the Instaloader folders are never written to)")
    if root.exists() and not root.is_dir():
        raise ImportRootError(f"ROOT {root} exists and is not a folder")
    if (root / "world.json").exists():
        raise ImportRootError(f"ROOT {root} holds a synthetic world (world.json); import real data into "
                           f"another folder")
    marker = root / MARKER_FILE
    has_records = any((root / f).exists() for f in (schema.POSTS_FILE, schema.ACCOUNTS_FILE, schema.TIMELINES_DIR))
    if marker.exists():
        try:
            prev = json.loads(marker.read_text(encoding="utf-8"))
            prev_check = prev.get("pseudonymized_key_check") if isinstance(prev, dict) else None
        except (ValueError, OSError) as e:
            raise ImportRootError(f"{marker} is unreadable ({e}); it records whether ROOT is pseudonymised") from None
        now = pseudo.key_check if pseudo else None
        if prev_check != now:
            if prev_check is None:
                raise ImportRootError(f"ROOT {root} holds a plain (not pseudonymised) import; import with "
                                   f"--pseudonymize into a new ROOT")
            if now is None:
                raise ImportRootError(f"ROOT {root} was imported with --pseudonymize; pass the same key file "
                                   f"again (or import into a new ROOT)")
            raise ImportRootError(f"ROOT {root} was pseudonymised with another key; pass the key file used "
                               f"before (pseudonyms from two keys would not match)")
    elif pseudo is not None and has_records:
        raise ImportRootError(f"ROOT {root} already holds records that were not pseudonymised with this key; "
                           f"import with --pseudonymize into a new ROOT")


# --------------------------------------------------------------------------- the import


def import_folders(sources: list[str | Path], root: str | Path, *, pseudonymizer: Pseudonymizer | None = None,
                   copy: bool = False) -> ImportReport:
    """Import Instaloader folders into ROOT; returns what was done and every problem.

    Hashtag folders (name starting with '#') go to posts.jsonl, profile folders (holding
    ``<name>_<id>.json.xz``) to accounts.jsonl and timelines/. Posts already in ROOT (by
    id) are left as they are; new ones are appended. Pictures are hard-linked into
    ROOT/images/instagram/ (copied with ``copy=True`` or across file systems). Raises
    :class:`ImportRootError` when ROOT cannot be used; nothing is written then.
    """
    root = Path(root)
    # The same folder named twice (a shell glob and a name) is read once.
    sources = list({os.path.realpath(s): Path(s) for s in sources}.values())
    _check_root(root, sources, pseudonymizer)
    report = ImportReport(root)
    posts_file = _RootFile(root / schema.POSTS_FILE, "id")
    accounts_file = _RootFile(root / schema.ACCOUNTS_FILE, "username")
    timelines: dict[str, _RootFile] = {}
    new_posts: dict[str, dict] = {}  # id -> record, this run's hashtag posts

    for src in sources:
        folder = _scan(src, report)
        if folder is None:
            continue
        name = src.resolve().name
        if name.startswith("#"):
            _import_hashtag_folder(folder, name[1:].lower(), root, posts_file, new_posts, pseudonymizer, copy, report)
        else:
            _import_profile_folder(folder, root, accounts_file, timelines, pseudonymizer, copy, report)

    root.mkdir(parents=True, exist_ok=True)
    # Accounts first: an interruption then leaves an account without its timeline (an
    # accepted oddity) rather than a timeline without its account (rejected); either
    # way the next run completes it.
    accounts_file.write()
    for tl in timelines.values():
        tl.write()
    posts_file.write()
    if not posts_file.path.exists():
        # Profiles alone: posts.jsonl is the one file every ROOT has (validation and the
        # builders require it), so it is created, empty.
        rootfiles.write_lines(posts_file.path, [])
    rootfiles.write_bytes(root / MARKER_FILE, rootfiles.json_line({
        "written_by": "python -m drugjax.data import-instaloader",
        "pseudonymized_key_check": pseudonymizer.key_check if pseudonymizer else None,
    }) + b"\n")
    report.counts["new posts in posts.jsonl"] += len(posts_file.new)
    report.counts["new accounts in accounts.jsonl"] += len(accounts_file.new)
    report.counts["new timeline posts"] += sum(len(t.new) for t in timelines.values())
    return report


def _import_hashtag_folder(folder: _Folder, query: str, root: Path, posts_file: _RootFile,
                           new_posts: dict[str, dict], pseudo: Pseudonymizer | None, copy: bool,
                           report: ImportReport) -> None:
    if folder.profiles:
        report.counts["profile metadata in hashtag folders ignored"] += len(folder.profiles)
    used: set[Path] = set()
    for meta in folder.posts:
        post = _convert_post(meta, folder.files, query, None, pseudo, report)
        if post is None:
            used.update(_media_files(meta, folder.files)[0])
            continue
        used.update(post.pictures)
        rid = post.record["id"]
        if rid in new_posts:
            # The same post found by two hashtag searches: one record, every query kept.
            queries = new_posts[rid]["queries"]
            if query not in queries:
                queries.append(query)
            report.counts["posts found under several hashtags (one record, queries merged)"] += 1
            continue
        if rid in posts_file.keys:
            report.counts["posts already in posts.jsonl (left as they are)"] += 1
            continue
        if not _place_pictures(post, root, copy, report):
            continue
        post.record["queries"] = [query]
        new_posts[rid] = post.record
        posts_file.add(post.record, "id")
    _report_orphans(folder, used, report)


def _profile_meta(folder: _Folder, report: ImportReport) -> _Meta | None:
    if len(folder.profiles) == 1:
        return folder.profiles[0]
    want = folder.path.resolve().name.lower()
    for m in folder.profiles:
        if str(m.node.get("username", "")).lower() == want:
            return m
    n = len(folder.posts)
    if not folder.profiles:
        report.problem(folder.path, f"no profile metadata (<username>_<id>.json.xz) in this folder, so no "
                                    f"accounts.jsonl record (bio, followers, following) for its {n} posts: "
                                    f"they are not imported. Download the profile again with "
                                    f"`instaloader {want}` (it writes that file) and re-run; a folder of "
                                    f"hashtag posts must be named '#tag'", posts=n)
    else:
        report.problem(folder.path, f"{len(folder.profiles)} profile metadata files and none for {want!r}; "
                                    f"keep the current one and re-run", posts=n)
    return None


def _count(node: dict, edge: str, flat: str) -> int | None:
    for v in (_dig(node, edge, "count"), node.get(flat)):
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return None


def _import_profile_folder(folder: _Folder, root: Path, accounts_file: _RootFile,
                           timelines: dict[str, _RootFile], pseudo: Pseudonymizer | None, copy: bool,
                           report: ImportReport) -> None:
    meta = _profile_meta(folder, report)
    if meta is None:
        return
    node = meta.node
    username = node.get("username")
    followers = _count(node, "edge_followed_by", "follower_count")
    following = _count(node, "edge_follow", "following_count")
    n = len(folder.posts)
    if not isinstance(username, str) or not _USERNAME.fullmatch(username) or username in (".", ".."):
        report.problem(meta.path, f"unusable username {username!r} in the profile metadata; its {n} posts "
                                  f"are not imported", posts=n)
        return
    if followers is None or following is None:
        report.problem(meta.path, f"the profile metadata lacks edge_followed_by / edge_follow counts; its {n} "
                                  f"posts are not imported (download the profile again and re-run)", posts=n)
        return
    username = username.lower()
    bio = node.get("biography") if isinstance(node.get("biography"), str) else ""
    bio = unicodedata.normalize("NFC", bio)
    account = pseudo.username(username) if pseudo else username
    if account in accounts_file.keys:
        report.counts["accounts already in accounts.jsonl (left as they are)"] += 1
    else:
        record = {"username": account, "bio": pseudo.text(bio) if pseudo else bio, "followers": followers,
                  "following": following, "expert1": None, "expert2": None,
                  "posts_count": _count(node, "edge_owner_to_timeline_media", "media_count"),
                  "is_private": node.get("is_private") if isinstance(node.get("is_private"), bool) else None}
        if pseudo is None:
            # Identifying, so only kept in a plain import.
            record["instagram_id"] = str(node.get("id", node.get("pk", "")))
            record["external_url"] = node.get("external_url") if isinstance(node.get("external_url"), str) else None
        accounts_file.add(record, "username")
    tl = timelines.get(account)
    if tl is None:
        tl = timelines[account] = _RootFile(root / schema.TIMELINES_DIR / f"{account}.jsonl", "id")
    used: set[Path] = set()
    for m in folder.posts:
        post = _convert_post(m, folder.files, "", username, pseudo, report)
        if post is None:
            used.update(_media_files(m, folder.files)[0])
            continue
        used.update(post.pictures)
        if post.record["id"] in tl.keys:
            report.counts["timeline posts already in ROOT (left as they are)"] += 1
            continue
        if _place_pictures(post, root, copy, report):
            tl.add(post.record, "id")
    _report_orphans(folder, used, report)


def _report_orphans(folder: _Folder, used: set[Path], report: ImportReport) -> None:
    """Pictures no metadata file accounts for are listed, never silently left behind."""
    for base in folder.failed_bases:  # their post is listed already, with its metadata file
        used = used | set(_media_files(_Meta(folder.path / base, base, "", {}), folder.files)[0])
    orphans: dict[str, list[Path]] = {}  # by post: a sidecar's _1.jpg, _2.jpg are one post
    for f in folder.files:
        if f.suffix.lower() in IMAGE_EXTENSIONS and f not in used:
            if _PROFILE_PIC.match(f.name):
                report.counts["profile pictures (not posts) ignored"] += 1
            else:
                orphans.setdefault(re.sub(r"(_\d+)?\.[A-Za-z0-9]+$", "", f.name), []).append(f)
    for base, pics in orphans.items():
        names = ", ".join(p.name for p in pics[1:])
        report.problem(pics[0], "picture without a metadata file (" + base + ".json.xz) beside it"
                       + (f" (also {names})" if names else "") + ": not imported (the metadata gives the "
                       "post's id; download the post again with Instaloader and re-run)")


def print_report(report: ImportReport, out) -> None:
    """The summary a user reads: counts, then every problem with its file."""
    print(f"imported into {escape_controls(report.root)}", file=out)
    for what, n in sorted(report.counts.items()):
        if n:
            print(f"  {n:>7}  {what}", file=out)
    if report.key_created:
        print(f"created a new pseudonymisation key in {escape_controls(report.key_created)}: keep it outside "
              f"ROOT and pass it to every later import into this ROOT", file=out)
    if report.problems:
        print(f"problems ({len(report.problems)}; the rest was imported):", file=out)
        for p in report.problems:
            print(f"  {p}", file=out)
    else:
        print("no problems", file=out)
    print(f"next: python -m drugjax.data validate {escape_controls(report.root)}", file=out)
