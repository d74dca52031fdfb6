"""Validate a whole dataset ROOT: every record, every image, nothing lost silently.

``python -m drugjax.data validate ROOT [--rejected PATH]`` prints, per file, how many
records were good and how many rejected, the accepted oddities with their counts, then
each rejection as ``file:line: field: reason``. Exit status 0 when nothing was rejected,
1 otherwise (2 for a usage error such as a missing ROOT).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from pathlib import Path
from typing import TextIO

from drugjax.data.schema import (
    ACCOUNTS_FILE,
    DEFAULT_MAX_PIXELS,
    WEB_FILE,
    Loaded,
    Rejection,
    load_accounts,
    load_posts,
    load_web,
)
from drugjax.runtime.textsafe import escape_controls


@dataclasses.dataclass
class Report:
    """The outcome of validating a ROOT."""

    root: Path
    posts: Loaded
    web: Loaded
    accounts: Loaded
    seconds: float

    @property
    def rejections(self) -> list[Rejection]:
        return self.posts.rejections + self.web.rejections + self.accounts.rejections

    @property
    def oddities(self) -> collections.Counter:
        return self.posts.oddities + self.web.oddities + self.accounts.oddities

    @property
    def counts(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for part in (self.posts, self.web, self.accounts):
            out.update(part.counts)
        return out

    @property
    def ok(self) -> bool:
        return not self.rejections


def _absent(file: str, meaning: str) -> Loaded:
    return Loaded([], [], collections.Counter({f"{file} absent ({meaning}; optional)": 1}))


def validate(
    root: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, decode_images: bool = True
) -> Report:
    """Load and check every file of the dataset at ``root``."""
    root = Path(root)
    t0 = time.perf_counter()
    kw = dict(max_pixels=max_pixels, decode_images=decode_images)
    posts = load_posts(root, **kw)
    # web.jsonl and accounts.jsonl are optional, as for the builders (a ROOT imported
    # from hashtag searches alone has neither); their absence is reported, not rejected.
    web = load_web(root, **kw) if (root / WEB_FILE).exists() else _absent(WEB_FILE, "no web images")
    accounts = (load_accounts(root, **kw) if (root / ACCOUNTS_FILE).exists()
                else _absent(ACCOUNTS_FILE, "no accounts or timelines"))
    return Report(root, posts, web, accounts, time.perf_counter() - t0)


def print_report(report: Report, out: TextIO) -> None:
    """The human-readable report: per-file counts, oddities, then every rejection."""
    counts = report.counts
    # File names (timelines/<username>.jsonl) come from the data: escaped.
    width = max((len(escape_controls(f)) for f in counts), default=10)
    print(f"validated {escape_controls(report.root)} in {report.seconds:.1f} s", file=out)
    for file, (good, bad) in counts.items():
        print(f"  {escape_controls(file):<{width}}  {good:>7} good  {bad:>6} rejected", file=out)
    good = sum(c[0] for c in counts.values())
    bad = sum(c[1] for c in counts.values())
    n_tl = sum(1 for f in counts if f.startswith("timelines/"))
    print(f"  total: {good} good, {bad} rejected records in {len(counts)} files "
          f"({n_tl} timelines)", file=out)
    if report.oddities:
        print("accepted oddities (counted, repaired):", file=out)
        for what, n in sorted(report.oddities.items()):
            print(f"  {n:>7}  {escape_controls(what)}", file=out)
    if report.rejections:
        print(f"rejected ({len(report.rejections)}):", file=out)
        for r in report.rejections:
            print(str(r), file=out)
    else:
        print("no rejections", file=out)


def write_rejections(report: Report, path: str | Path) -> None:
    """Write the rejections as JSON lines ``{"file", "line", "field", "reason"}``."""
    with open(path, "w", encoding="utf-8") as f:
        for r in report.rejections:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
