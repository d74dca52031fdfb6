"""Figure 1 for analysts: a dataset ROOT found by hashtag -> a ranked list of accounts for
human review, with the evidence behind each place in it.

    python -m drugjax.detect ROOT --models runs/evaluate/table1 --out review/
    python -m drugjax.detect ROOT --models RUN_DIR --out review/ --pseudonymize ~/keys/review.key

1. the posts of ``ROOT/posts.jsonl`` that carry a tag of the dictionary
   (``conf/dictionary.yaml``, ``--dictionary``), matched after ``normalize_text``;
2. each scored by the evaluate run's saved text model (``RUN_DIR/models/text_combined.joblib``;
   detect computes no backbone features, and late fusion scores a post without an image
   by its text alone) at the run's threshold;
3. grouped by account; the accounts of ``ROOT/accounts.jsonl`` with a timeline get the
   account features (:mod:`drugjax.accounts`) and the run's dealer model
   (``RUN_DIR/models/dealers.joblib``, LR-select on expert 1's labels): a score and each
   feature's contribution (coefficient x standardised value); accounts with a drug-scored
   post but no timeline are listed as "needs timeline";
4. ``review.csv`` (ranked), ``review.html`` (self-contained: pictures as data URIs, no
   script, no remote resource) and ``candidate_tags.csv``: tags that co-occur with
   dictionary tags on drug-scored posts, candidates for the dictionary.

The output is a list for a human to review, never a verdict: a high score means the
account resembles those the experts judged dealers in the training data, nothing more.
Everything taken from posts, bios and comments is escaped. With ``--pseudonymize KEYFILE``
every username, @mention and post id in every output is replaced by its keyed pseudonym
(:mod:`drugjax.data.pseudonym`); captions and pictures can still identify a person.
"""

from __future__ import annotations

import argparse
import base64
import collections
import csv
import html
import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.conf import packaged
from drugjax.errors import USER_ERRORS, UserError, print_error
from drugjax.accounts import FEATURE_NAMES, Blacklist, account_table
from drugjax.data import schema
from drugjax.runtime.textsafe import csv_cell, escape_controls
from drugjax.text import normalize_text

DEFAULT_DICTIONARY = packaged("dictionary.yaml")
NOTICE = ("This is a list for human review, not a verdict. A score ranks accounts by how much they resemble "
          "those the experts judged dealers in the training data; it establishes nothing about anyone. "
          "Read the evidence and the posts before any step is taken.")
THUMBNAIL_PX = 128
# Quality 70 with optimised Huffman tables: the paper world's 608 thumbnails weigh 1.7 MB
# of its 2.3 MB review.html (quality 80: 2.4 of 3.0 MB).
THUMBNAIL_QUALITY = 70
POSTS_SHOWN = 3  # most drug-like posts shown per account
MIN_TAG_COUNT = 2  # a candidate tag co-occurs on at least this many drug-scored posts


class DetectError(UserError, ValueError):
    """A user error: missing file, bad dictionary; the message says which and the fix."""


def load_dictionary(path: str | Path = DEFAULT_DICTIONARY) -> set[str]:
    """The dictionary's tags (every list in the YAML mapping), normalised, without '#'."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DetectError(f"dictionary {path} does not exist; pass --dictionary FILE (see {DEFAULT_DICTIONARY})")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise DetectError(f"{path}: expected a mapping of group name to a list of hashtags")
    return {_tag(t) for terms in doc.values() for t in terms if _tag(t)}


def _tag(tag: Any) -> str:
    return normalize_text(str(tag)).strip().lstrip("#")


class Names:
    """Usernames, @mentions and post ids as the outputs show them: as they are, or
    pseudonymised (also bare mentions of a known username in free text)."""

    def __init__(self, pseudonymizer: Any = None, usernames: Sequence[str] = ()):
        self.p = pseudonymizer
        known = sorted({u for u in usernames if u}, key=len, reverse=True)
        self._bare = (re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, known)) + r")(?![\w])", re.IGNORECASE)
                      if known and pseudonymizer else None)

    def user(self, name: str) -> str:
        return self.p.username(name) if self.p else name

    def post(self, pid: str) -> str:
        return self.p.post_id(pid) if self.p else pid

    def text(self, text: str) -> str:
        if not self.p:
            return text
        text = self.p.text(text)
        return self._bare.sub(lambda m: self.p.username(m.group(1)), text) if self._bare else text


def thumbnail(root: Path, rel: str | None) -> str | None:
    """A small JPEG of a post's picture as a data URI (None when it cannot be read)."""
    if not rel:
        return None
    from PIL import Image

    try:
        with Image.open(root / rel) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def candidate_tags(posts: Sequence[Mapping[str, Any]], drug: np.ndarray, dictionary: set[str]) -> list[dict]:
    """Tags outside the dictionary on drug-scored posts, by how many drug-scored posts carry
    them, with the share of all matched posts carrying them that are drug-scored."""
    on_drug, on_all = collections.Counter(), collections.Counter()
    for post, is_drug in zip(posts, drug):
        tags = {_tag(t) for t in post.get("tags") or []} - dictionary - {""}
        on_all.update(tags)
        if is_drug:
            on_drug.update(tags)
    rows = [{"tag": t, "drug_posts": n, "drug_share": n / on_all[t]} for t, n in on_drug.items() if n >= MIN_TAG_COUNT]
    return sorted(rows, key=lambda r: (-r["drug_posts"], -r["drug_share"], r["tag"]))


def post_scorer(root: Path, folder: Path, posts: Sequence[Mapping[str, Any]], mode: str, forced: bool
                ) -> tuple[Any, str]:
    """The drug probability of a post as the run's account stage computed it (``mode``,
    its ``dealers.post_scores``): late fusion of its picture (the run's backbone and MT
    MLP heads) and its text, or the text model alone; and a sentence saying which.
    ``forced``: text alone was asked for (--text-only) whatever the run did."""
    import joblib

    from drugjax.evaluation.account_protocol import text_probability

    if mode == "text":
        text = text_probability(joblib.load(folder / "text_combined.joblib"))
        why = ("--text-only: no picture looked at, although the run's dealer model learned from fused scores"
               if forced else "as the run's account stage did: dealers.post_scores=text")
        return text, f"the text model alone ({why})"
    from drugjax.evaluation.config import to_config, train_config
    from drugjax.evaluation.protocol import load_models
    from drugjax.evaluation.timelines import Pictures, fused_probabilities, picture_features
    from drugjax.training.build import resolve_weights

    models = load_models(folder)
    backbone = models.fusion["backbone"]
    if backbone.get("checkpoint") is not None:
        raise DetectError(f"{folder}: its image model reads the features of a train.py checkpoint "
                          f"({backbone['weights']}); detect computes features from weights files only. "
                          "Pass --text-only, or evaluate with a weights file")
    cfg = to_config({"seed": backbone["seed"], "data": {"image_size": backbone["image_size"]},
                     "model": {"backbone": {k: backbone[k] for k in ("name", "weights", "transform_input",
                                                                     "pool_layers", "flip_average")}}})
    if resolve_weights(train_config(cfg)).sha256 != backbone["weights_sha256"]:
        raise DetectError(f"the backbone weights {backbone['weights']} are not those {folder} was trained with "
                          "(sha256 differs); evaluate again, or pass --text-only")
    features = picture_features(cfg, Pictures.of_files(root, posts))
    fused, counts = fused_probabilities(models, features, posts)
    return (lambda ps: np.array([fused[str(p["id"])] for p in ps]),
            f"late fusion of picture and text, as the run's account stage did ({counts['fusion']} posts by both, "
            f"{counts['text_only']} by text alone without a usable picture, {counts['image_only']} by picture alone)")


def review(root: str | Path, models: str | Path, out: str | Path, *, dictionary: str | Path = DEFAULT_DICTIONARY,
           pseudonymize: str | Path | None = None, text_only: bool = False) -> dict[str, Any]:
    """Write review.csv, review.html and candidate_tags.csv into ``out``; returns counts and paths."""
    import joblib

    from drugjax.evaluation.account_protocol import DEALER_MODEL_FILE
    from drugjax.evaluation.dealers import contributions

    root, models, out = Path(root), Path(models), Path(out)
    folder = models / "models" if (models / "models").is_dir() else models
    for name in ("text_combined.joblib", DEALER_MODEL_FILE, "fusion.json"):
        if not (folder / name).is_file():
            raise DetectError(f"{folder / name} is missing; --models takes an evaluate.py run directory "
                              "(python evaluate.py ... writes models/ there)")
    if not (root / schema.POSTS_FILE).is_file():
        raise DetectError(f"{root / schema.POSTS_FILE} does not exist; ROOT is a dataset folder (docs/data-format.md)")
    terms = load_dictionary(dictionary)
    dealer = joblib.load(folder / DEALER_MODEL_FILE)
    threshold = float(json.loads((folder / "fusion.json").read_text())["threshold"])
    loaded = schema.load_posts(root, decode_images=False)
    loaded_accounts = (schema.load_accounts(root, decode_images=False)
                       if (root / schema.ACCOUNTS_FILE).is_file() else schema.Loaded([], []))
    accounts = loaded_accounts.records
    # records that failed validation are left out, and said so (validate lists them)
    rejected = len(loaded.rejections) + len(loaded_accounts.rejections)
    names = _names(pseudonymize, root, out, [a["username"] for a in accounts] + [p["account"] for p in loaded.records])

    matched = [p for p in loaded.records if {_tag(t) for t in p.get("tags") or []} & terms]
    with_timeline = [a for a in accounts if a["timeline"]]
    scored_posts = list({str(p["id"]): p for p in matched + [p for a in with_timeline for p in a["timeline"]]}.values())
    mode = "text" if text_only else dealer.get("post_scores", "text")
    probability, scored_by = post_scorer(root, folder, scored_posts, mode,
                                         forced=text_only and dealer.get("post_scores") == "fusion")
    prob = probability(matched) if matched else np.zeros(0)
    drug = prob >= threshold
    by_account: dict[str, list[tuple[dict, float]]] = collections.defaultdict(list)
    for post, q in zip(matched, prob):
        by_account[post["account"]].append((post, float(q)))

    blacklist = Blacklist.load(dealer["blacklist"]) if dealer.get("blacklist") else Blacklist.load()
    table = account_table(with_timeline, probability, threshold=dealer["threshold"],
                          blacklist=blacklist, log_counts=dealer["log_counts"],
                          evidence_sources=tuple(dealer.get("evidence_sources", ("bio", "comment"))))
    rows = []
    if with_timeline:
        score = dealer["model"].predict_proba(table.features)[:, 1]
        parts = contributions(dealer["model"], table.features)
        for i, account in enumerate(with_timeline):
            posts = {p["id"]: p for p in account["timeline"]}
            # the most drug-like of its drug-scored posts, from the timeline and the search alike
            candidates = [(posts[pid], q) for pid, q in table.drug_posts[i]]
            candidates += [(p, q) for p, q in by_account.get(account["username"], []) if q >= threshold
                           and p["id"] not in posts]
            shown = sorted(candidates, key=lambda t: -t[1])[:POSTS_SHOWN]
            rows.append({"username": account["username"], "status": "scored", "score": float(score[i]),
                         "features": table.features[i], "contributions": parts[i], "evidence": table.evidence[i],
                         "posts": shown, "bio": account.get("bio") or "",
                         "found_posts": len(by_account.get(account["username"], []))})
    timeline_names = {a["username"] for a in with_timeline}
    for name, posts in sorted(by_account.items()):
        if name not in timeline_names and any(q >= threshold for _, q in posts):
            shown = sorted(posts, key=lambda t: -t[1])[:POSTS_SHOWN]
            rows.append({"username": name, "status": "needs timeline", "score": None, "features": None,
                         "contributions": None, "evidence": [], "posts": shown, "bio": "", "found_posts": len(posts)})
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), r["username"]))
    tags = candidate_tags(matched, drug, terms)

    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": _write_csv(out / "review.csv", rows, names),
             "tags": _write_tags(out / "candidate_tags.csv", tags),
             "html": out / "review.html"}
    counts = {"posts": len(loaded.records), "rejected_records": rejected, "scored_by": scored_by,
              "matched": len(matched), "drug_scored": int(drug.sum()),
              "scored_accounts": len(with_timeline),
              "needs_timeline": sum(r["status"] == "needs timeline" for r in rows)}
    files["html"].write_text(_html(rows, tags, names, root, dealer, counts), encoding="utf-8")
    return {"files": files, "counts": counts, "problems": dict(table.problems)}


def _names(pseudonymize: str | Path | None, root: Path, out: Path, usernames: list[str]) -> Names:
    if not pseudonymize:
        return Names()
    from drugjax.data.pseudonym import Pseudonymizer, load_or_create_key

    key, _ = load_or_create_key(Path(pseudonymize), forbidden=[root, out])
    return Names(Pseudonymizer(key), usernames)


def _write_csv(path: Path, rows: list[dict], names: Names) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "account", "status", "score", *FEATURE_NAMES, *(f"contribution_{n}" for n in FEATURE_NAMES),
                    "evidence", "found_posts"])
        for rank, r in enumerate(rows, 1):
            values = ([f"{v:.4g}" for v in r["features"]] + [f"{v:+.3f}" for v in r["contributions"]]
                      if r["features"] is not None else [""] * (2 * len(FEATURE_NAMES)))
            evidence = "; ".join(f"{e.source}: {e.term}: {names.text(e.context)}" for e in r["evidence"])
            w.writerow([rank, csv_cell(names.user(r["username"])), r["status"],
                        "" if r["score"] is None else f"{r['score']:.4f}", *values, csv_cell(evidence),
                        r["found_posts"]])
    return path


def _write_tags(path: Path, tags: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["tag", "drug_scored_posts", "drug_share"])
        for t in tags:
            w.writerow([csv_cell(t["tag"]), t["drug_posts"], f"{t['drug_share']:.3f}"])
    return path


_STYLE = """body{font:14px sans-serif;max-width:1100px;margin:auto;padding:1em}
.notice{border:2px solid #b00;padding:.6em;background:#fff4f4}
section{border-top:1px solid #ccc;padding:.5em 0} table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right} .post{display:inline-block;width:180px;
vertical-align:top;margin:4px;font-size:12px;overflow-wrap:anywhere} .ctx{font-family:monospace}"""


def _escape(text: Any) -> str:
    return html.escape(str(text), quote=True)  # everything from data goes through here


def signed(value: float) -> str:
    """A contribution with its sign, two decimals, and no "-0.00" for what rounds to zero."""
    text = f"{value:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text


def grouped_evidence(evidence: Sequence[Any]) -> list[dict]:
    """Blacklist matches grouped by where they were found (the bio, or one post's caption
    or comments): each term once, each distinct text once, in the order found."""
    groups: dict[tuple, dict] = {}
    for ev in evidence:
        group = groups.setdefault((ev.source, ev.post_id), {"source": ev.source, "post_id": ev.post_id,
                                                              "terms": [], "contexts": []})
        if ev.term not in group["terms"]:
            group["terms"].append(ev.term)
        if ev.context not in group["contexts"]:
            group["contexts"].append(ev.context)
    return list(groups.values())


def _summary(counts: Mapping[str, int], dealer: Mapping[str, Any]) -> str:
    e = _escape
    return (f"<p>{counts['posts']} posts ({counts['rejected_records']} records of ROOT failed validation and "
            "are left out: python -m drugjax.data validate ROOT lists them), "
            f"{counts['matched']} carry a dictionary tag, {counts['drug_scored']} "
            f"scored drug-related. Posts are scored by {e(counts['scored_by'])}. "
            f"{counts['scored_accounts']} accounts with a timeline scored "
            f"by LR-select (trained on expert {e(str(dealer.get('expert', 'exp1'))[-1])}'s labels; features kept: "
            f"{e(', '.join(dealer.get('kept', [])))}); {counts['needs_timeline']} need their timeline "
            "downloaded before they can be scored. A score is LR-select's output under balanced class "
            "weights, 0 to 1, for ordering only: not a calibrated probability. A contribution is the "
            "feature's coefficient times its standardised value (positive: towards the top).</p>")


def _scored_section(rank: int, r: dict, names: Names, root: Path) -> str:
    e = _escape
    parts = [f"<section><h2>{rank}. {e(names.user(r['username']))} <small>(score {r['score']:.2f})</small></h2>"]
    if r["bio"]:
        parts.append(f"<p>Bio: <span class='ctx'>{e(names.text(r['bio']))}</span></p>")
    parts.append("<table><tr><th>feature</th>" + "".join(f"<th>{n}</th>" for n in FEATURE_NAMES) + "</tr>"
                 "<tr><th>value</th>" + "".join(f"<td>{v:.3g}</td>" for v in r["features"]) + "</tr>"
                 "<tr><th>contribution</th>" + "".join(f"<td>{signed(v)}</td>" for v in r["contributions"])
                 + "</tr></table>")
    if r["evidence"]:
        items = []
        for group in grouped_evidence(r["evidence"]):
            where = e(group["source"]) + (f" of post {e(names.post(group['post_id']))}" if group["post_id"] else "")
            terms = ", ".join(f"<b>{e(t)}</b>" for t in group["terms"])
            texts = "".join(f"<li class='ctx'>{e(names.text(c))}</li>" for c in group["contexts"])
            items.append(f"<li>{where}: {terms}<ul>{texts}</ul></li>")
        parts.append("<p>Evidence (blacklist matches, normalised text):</p><ul>" + "".join(items) + "</ul>")
    for post, q in r["posts"]:
        src = thumbnail(root, post.get("image"))
        img = f"<img alt='' src='{e(src)}'><br>" if src else "(no picture)<br>"
        post_tags = " ".join("#" + t for t in post.get("tags") or [])
        parts.append(f"<div class='post'>{img}p = {q:.2f}, post {e(names.post(post['id']))}<br>"
                     f"{e(names.text(post.get('caption') or ''))}<br><i>{e(names.text(post_tags))}</i></div>")
    parts.append("</section>")
    return "\n".join(parts)


def _needs_timeline_table(rows: list[dict], names: Names) -> str:
    """The accounts found by search without a timeline: one row each, no pictures (the
    timeline decides whether they are worth a full section)."""
    e = _escape
    lines = ["<h2>Accounts to download before they can be scored</h2><p>Each has a drug-scored post among "
             "the searched posts but no timeline in ROOT; their most drug-like post is shown as text.</p>"
             "<table><tr><th>account</th><th>searched posts</th><th>most drug-like post (p)</th>"
             "<th>its caption</th></tr>"]
    for r in rows:
        post, q = r["posts"][0]
        caption = names.text(post.get("caption") or "")
        caption = caption if len(caption) <= 120 else caption[:119] + "…"
        lines.append(f"<tr><td>{e(names.user(r['username']))}</td><td>{r['found_posts']}</td>"
                     f"<td>{e(names.post(post['id']))} ({q:.2f})</td><td class='ctx'>{e(caption)}</td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _candidate_tags_table(tags: list[dict], names: Names) -> str:
    e = _escape
    return ("<h2>Candidate dictionary tags</h2><p>Tags that co-occur with dictionary tags on drug-scored "
            "posts; review them before adding any to conf/dictionary.yaml.</p><table><tr><th>tag</th>"
            "<th>drug-scored posts</th><th>share of its posts drug-scored</th></tr>" + "".join(
                f"<tr><td>{e(names.text(t['tag']))}</td><td>{t['drug_posts']}</td><td>{t['drug_share']:.2f}</td></tr>"
                for t in tags[:50]) + "</table>")


def _html(rows: list[dict], tags: list[dict], names: Names, root: Path, dealer: Mapping[str, Any],
          counts: Mapping[str, int]) -> str:
    scored = [r for r in rows if r["score"] is not None]
    waiting = [r for r in rows if r["score"] is None]
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             # no script, no remote resource: pictures are data URIs, the style is inline
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>Accounts for review</title><style>{_STYLE}</style></head><body>",
             "<h1>Accounts for human review</h1>", f"<p class='notice'><b>{_escape(NOTICE)}</b></p>",
             _summary(counts, dealer)]
    parts += [_scored_section(rank, r, names, root) for rank, r in enumerate(scored, 1)]
    if waiting:
        parts.append(_needs_timeline_table(waiting, names))
    parts.append(_candidate_tags_table(tags, names) + "</body></html>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drugjax.detect", description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="dataset ROOT (docs/data-format.md)")
    ap.add_argument("--models", required=True, help="an evaluate.py run directory (holds models/)")
    ap.add_argument("--out", required=True, help="folder for review.csv, review.html, candidate_tags.csv")
    ap.add_argument("--dictionary", default=str(DEFAULT_DICTIONARY), help="hashtag dictionary YAML")
    ap.add_argument("--pseudonymize", metavar="KEYFILE", help="replace usernames, @mentions and post ids by keyed "
                    "pseudonyms (the key is created if missing; keep it outside ROOT and OUT)")
    ap.add_argument("--text-only", action="store_true", help="score posts by their text alone even where the "
                    "run fused picture and text (dealers.post_scores=fusion): no backbone, no picture looked at (a "
                    "machine that cannot afford the features; the page says so)")
    args = ap.parse_args(argv)
    try:
        result = review(args.root, args.models, args.out, dictionary=args.dictionary, pseudonymize=args.pseudonymize,
                        text_only=args.text_only)
    except USER_ERRORS as err:
        print_error(err)
        return 1
    c = result["counts"]
    if c["rejected_records"]:
        print(f"{c['rejected_records']} records of ROOT failed validation and are left out "
              f"(python -m drugjax.data validate {escape_controls(args.root)} lists them)")
    for problem, n in sorted(result["problems"].items()):
        print(f"{n} x {problem}")
    print(f"posts scored by {c['scored_by']}")
    print(f"{c['matched']} posts with a dictionary tag, {c['drug_scored']} drug-scored; "
          f"{c['scored_accounts']} accounts "
          f"scored, {c['needs_timeline']} need a timeline. Wrote {escape_controls(args.out)}/review.html, review.csv, "
          f"candidate_tags.csv.\n{NOTICE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
