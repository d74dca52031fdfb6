"""Labels for an imported ROOT, through CSV files instead of editing JSON by hand.

``export_unlabelled`` writes the posts (``drug`` null) and accounts (an expert label
null) still to be judged, with their captions, tags and image paths, as CSV files for
annotators. ``apply_labels`` merges filled-in CSV files back:

- posts: columns ``id,drug`` (more columns are ignored, so an exported file can come
  back as it is); the label goes to every record with that id, in posts.jsonl and in
  the timelines;
- accounts: columns ``username,expert1,expert2``.

A value is ``0``, ``1`` or empty (not judged yet: counted, nothing changes). Unknown ids,
bad values and contradicting rows are listed with ``file:line`` and not applied; every
other row is. A label already set is changed only with ``relabel=True``. Records that
are not relabelled stay byte for byte as they were; files are replaced atomically.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
from pathlib import Path

from drugjax.errors import UserError
from drugjax.data import rootfiles, schema
from drugjax.runtime.textsafe import escape_controls

POST_COLUMNS = ("id", "drug")
ACCOUNT_COLUMNS = ("username", "expert1", "expert2")
# Spreadsheet programs run a cell that starts with one of these as a formula ("CSV
# injection"); captions are untrusted, so such cells get a leading apostrophe, which
# the programs show as text and do not store.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class LabelFileError(UserError, ValueError):
    """A CSV file that cannot be used at all (missing, no header, missing columns)."""


@dataclasses.dataclass(frozen=True)
class LabelProblem:
    """A row not applied: ``file``, 1-based ``line``, the column and the reason."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{escape_controls(self.file)}:{self.line}: {self.field}: {escape_controls(self.reason)}"


@dataclasses.dataclass
class LabelReport:
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list[LabelProblem] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------- reading CSV


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """Rows of ``path`` as (first line number, {column: stripped value})."""
    try:
        # utf-8-sig: spreadsheet programs often start their UTF-8 export with a BOM.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise LabelFileError(f"{path}: not UTF-8 (byte {e.start + 1}); save the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise LabelFileError(f"{path}: empty file; the first line must be the header {','.join(required)}") from None
    header = [h.strip().lower() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise LabelFileError(f"{path}:1: missing column(s) {', '.join(missing)}; the header must name "
                             f"{','.join(required)} (got {','.join(header)!r})")
    rows = []
    start = reader.line_num + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append((start, {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}))
        start = reader.line_num + 1
    return rows


def _value(text: str) -> int | None | str:
    """0, 1, None (empty: not judged) or the bad text itself."""
    if text == "":
        return None
    if text in ("0", "1"):
        return int(text)
    return text


# --------------------------------------------------------------------------- merging


@dataclasses.dataclass
class _Place:
    file: str  # relative to ROOT
    index: int  # line index in that file


def index_files(root: Path, rels: list[str], key: str) -> tuple[dict[str, list[bytes]], dict[str, list[_Place]]]:
    """The lines of each file in ``rels`` (relative to ROOT) and, per value of ``key``,
    where its records are (file, line index): what a label merge rewrites."""
    lines: dict[str, list[bytes]] = {}
    where: dict[str, list[_Place]] = collections.defaultdict(list)
    for rel in rels:
        lines[rel] = rootfiles.read_lines(root / rel)
        for i, line in enumerate(lines[rel]):
            rec = rootfiles.parse_line(line)
            if rec is not None and isinstance(rec.get(key), str):
                where[rec[key]].append(_Place(rel, i))
    return lines, where


def _collect(path: Path, rows, key: str, fields: tuple[str, ...], report: LabelReport) -> dict[str, dict]:
    """Valid rows as {key: {field: 0/1}}; bad and contradicting rows go to the report."""
    wanted: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    conflicting: set[str] = set()
    for line, row in rows:
        ident = row[key]
        if not ident:
            report.problems.append(LabelProblem(str(path), line, key, f"empty {key}"))
            continue
        labels = {}
        bad = False
        for f in fields:
            v = _value(row[f])
            if isinstance(v, str):
                report.problems.append(LabelProblem(str(path), line, f, f"unknown label {v!r}; expected 0, 1 "
                                                                       f"or empty (not judged yet)"))
                bad = True
            elif v is None:
                report.counts[f"{f}: empty (not judged yet, nothing changed)"] += 1
            else:
                labels[f] = v
        if bad or not labels:
            continue
        if ident in wanted:
            if any(wanted[ident].get(f, v) != v for f, v in labels.items()):
                report.problems.append(LabelProblem(str(path), line, key, f"{ident!r} is also on line "
                                                    f"{first_line[ident]} with another label; neither applied"))
                conflicting.add(ident)
            else:
                wanted[ident].update(labels)
            continue
        wanted[ident] = labels
        first_line[ident] = line
    for ident in conflicting:
        del wanted[ident]
    return {k: (v, first_line[k]) for k, v in wanted.items()}


def _merge(root: Path, path: Path, rows, key: str, fields: tuple[str, ...], rels: list[str], relabel: bool,
           report: LabelReport, what: str) -> None:
    wanted = _collect(path, rows, key, fields, report)
    lines, where = index_files(root, rels, key)
    changed: set[str] = set()
    for ident, (labels, line) in wanted.items():
        places = where.get(ident)
        if not places:
            report.problems.append(LabelProblem(str(path), line, key, f"unknown {key} {ident!r}: not in {what}"))
            continue
        records = [(p, rootfiles.parse_line(lines[p.file][p.index])) for p in places]
        clash = [(p, f, rec[f]) for p, rec in records for f, v in labels.items()
                 if rec.get(f) is not None and rec.get(f) != v]
        if clash and not relabel:
            p, f, old = clash[0]
            report.problems.append(LabelProblem(
                str(path), line, f, f"{ident!r} is already labelled {old!r} in {p.file}:{p.index + 1}; the CSV "
                                    f"says {labels[f]} (pass --relabel to change labels already set)"))
            continue
        for p, rec in records:
            if all(rec.get(f) == v for f, v in labels.items()):
                report.counts[f"{what}: records that already had these labels"] += 1
                continue
            rec.update(labels)
            lines[p.file][p.index] = rootfiles.json_line(rec)
            changed.add(p.file)
            report.counts[f"{what}: records labelled"] += 1
    for rel in sorted(changed):
        rootfiles.write_lines(root / rel, lines[rel])


def post_files(root: Path) -> list[str]:
    """posts.jsonl and every timeline file of ROOT, relative to ROOT: where a post id's
    records are."""
    rels = [schema.POSTS_FILE] if (root / schema.POSTS_FILE).is_file() else []
    tdir = root / schema.TIMELINES_DIR
    if tdir.is_dir():
        rels += [f"{schema.TIMELINES_DIR}/{p.name}" for p in sorted(tdir.glob("*.jsonl")) if p.is_file()]
    return rels


def apply_labels(root: str | Path, *, posts_csv: str | Path | None = None, accounts_csv: str | Path | None = None,
                 relabel: bool = False) -> LabelReport:
    """Merge post labels (``id,drug``) and/or expert labels (``username,expert1,expert2``)
    into ROOT. Raises :class:`LabelFileError` for a CSV file that cannot be read at all
    (before anything is written)."""
    root = Path(root)
    report = LabelReport()
    # Read both files first, so that a bad header in the second changes nothing.
    post_rows = _read_csv(Path(posts_csv), POST_COLUMNS) if posts_csv else None
    account_rows = _read_csv(Path(accounts_csv), ACCOUNT_COLUMNS) if accounts_csv else None
    if post_rows is not None:
        _merge(root, Path(posts_csv), post_rows, "id", ("drug",), post_files(root), relabel, report,
               "posts")
    if account_rows is not None:
        _merge(root, Path(accounts_csv), account_rows, "username", ("expert1", "expert2"),
               [schema.ACCOUNTS_FILE], relabel, report, "accounts")
    return report


# --------------------------------------------------------------------------- export


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    if path.exists():
        raise LabelFileError(f"{path} exists; it is not overwritten (choose another name or move it away)")
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    rootfiles.write_bytes(path, buf.getvalue().encode("utf-8"))


def export_unlabelled(root: str | Path, *, posts_csv: str | Path | None = None,
                      accounts_csv: str | Path | None = None) -> collections.Counter:
    """Write CSV files of the posts (posts.jsonl, ``drug`` null) and accounts (an expert
    label null) still to be judged. The first columns are the ones ``apply_labels``
    reads, left empty for the annotators; the others (caption, tags, comments, image
    paths relative to ROOT, bio, counts) are there to judge by. Returns counts."""
    root = Path(root)
    counts: collections.Counter = collections.Counter()
    for target in (posts_csv, accounts_csv):
        if target is not None and Path(target).exists():
            raise LabelFileError(f"{target} exists; it is not overwritten (choose another name or move it away)")
    if posts_csv is not None:
        rows = []
        for line in rootfiles.read_lines(root / schema.POSTS_FILE):
            rec = rootfiles.parse_line(line)
            if rec is None or not isinstance(rec.get("id"), str):
                counts["posts.jsonl lines not readable (run validate)"] += bool(line.strip())
                continue
            if rec.get("drug") is not None:
                continue
            rows.append([rec["id"], "", _cell(rec.get("account")), _cell(rec.get("query")),
                         _cell(rec.get("caption")), _cell(" ".join(rec.get("tags") or [])),
                         _cell(rec.get("image")), _cell(" ".join(rec.get("images") or [])),
                         _cell(rec.get("timestamp")), _cell(" | ".join(rec.get("comments") or []))])
        _write_csv(Path(posts_csv), list(POST_COLUMNS) + ["account", "query", "caption", "tags", "image",
                                                           "images", "timestamp", "comments"], rows)
        counts["unlabelled posts exported"] = len(rows)
    if accounts_csv is not None:
        rows = []
        for line in rootfiles.read_lines(root / schema.ACCOUNTS_FILE):
            rec = rootfiles.parse_line(line)
            if rec is None or not isinstance(rec.get("username"), str):
                counts["accounts.jsonl lines not readable (run validate)"] += bool(line.strip())
                continue
            if rec.get("expert1") is not None and rec.get("expert2") is not None:
                continue
            name = rec["username"]
            timeline = root / schema.TIMELINES_DIR / f"{name}.jsonl"
            n = sum(1 for x in rootfiles.read_lines(timeline) if x.strip())
            rows.append([name, "" if rec.get("expert1") is None else rec["expert1"],
                         "" if rec.get("expert2") is None else rec["expert2"], _cell(rec.get("bio")),
                         rec.get("followers"), rec.get("following"),
                         f"{schema.TIMELINES_DIR}/{name}.jsonl", n])
        _write_csv(Path(accounts_csv), list(ACCOUNT_COLUMNS) + ["bio", "followers", "following", "timeline",
                                                                 "timeline_posts"], rows)
        counts["unlabelled accounts exported"] = len(rows)
    return counts
