"""Account features for dealer detection (Yang & Luo 2016, Sections 3 and 4).

From an account record (``bio``, ``followers``, ``following``, ``timeline``: its posts) and a
post-probability function, nine features, in :data:`FEATURE_NAMES` order:

* ``P``: share of the timeline's posts classified drug-related (probability >= threshold).
* ``H1``-``H4``: how the drug-related posts spread over the hours of the day, as shares of
  them (so they sum to 1, or are all 0 without drug-related posts), in the bins of
  :data:`HOUR_BINS`: H1 [0, 6) midnight, H2 [6, 12) morning, H3 [12, 18) afternoon,
  H4 [18, 24) late evening. The hour is read in the post's own UTC offset
  (:func:`drugjax.data.schema.hour_of_day`: the poster's day, not UTC); a timestamp without
  an offset is taken as UTC. An account whose client writes every time in UTC (an
  Instaloader import, some synthetic accounts) therefore has UTC hours: a New York poster's
  midnight (UTC-5) lands in H1 as 05:00 but an 01:00 post lands in H2 as 06:00, so its
  hours are shifted by its unknown offset. Nothing can undo that from the data.
* ``R1`` followers, ``R2`` following, ``R3`` following / max(followers, 1) (0 followers
  counts as 1, so an account with none is finite). All three go through log1p
  (``log_counts=True``, the default): counts span five orders of magnitude, and after
  standardisation one celebrity would otherwise set the scale for everybody.
* ``E``: 1 when a :class:`Blacklist` term or pattern occurs in one of ``evidence_sources``,
  else 0. By default (:data:`EVIDENCE_SOURCES`) these are the paper's: the bio and the
  comments of the drug-related posts. The captions of the drug-related posts are searched
  too and their matches kept as evidence for the reviewer (:class:`Evidence`, with
  context), but they count in E only when ``"caption"`` is among the sources: on a
  200-post timeline of someone who merely uses drugs, one caption with a phone number or
  "📦" is easily found, and E would then say little (measured on the synthetic paper
  world: 92 % of non-dealers with captions counted, 84 % with comments, 13 % with the bio).

``account_table`` computes everything for a list of accounts, with the evidence and the
problems it met (counted, each with a clear sentence); :class:`AccountFeatures` is the same
as a scikit-learn transformer.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from drugjax.conf import packaged
from drugjax.errors import UserError
from drugjax.data.schema import parse_timestamp
from drugjax.text import normalize_text

FEATURE_NAMES: tuple[str, ...] = ("P", "H1", "H2", "H3", "H4", "R1", "R2", "R3", "E")
HOUR_BINS: tuple[tuple[int, int], ...] = ((0, 6), (6, 12), (12, 18), (18, 24))
DEFAULT_BLACKLIST = packaged("blacklist.yaml")
EVIDENCE_SOURCES: tuple[str, ...] = ("bio", "comment")  # where a match sets E (paper, Section 3.4)
CONTEXT_CHARS = 30  # characters of context kept either side of an evidence match

# A post-probability function: a list of post records -> their drug probabilities (n,).
PostProbability = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]


class BlacklistError(UserError, ValueError):
    """The blacklist file cannot be used; the message names the file and the entry."""


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One blacklist match: where (``bio``, ``caption`` or ``comment``, and the post id),
    which entry, and the normalised text around it (untrusted: escape before display)."""

    source: str
    post_id: str | None
    term: str
    context: str


@dataclasses.dataclass
class Blacklist:
    """Terms and named regular expressions, matched on normalised text."""

    entries: list[tuple[str, re.Pattern]]

    @classmethod
    def from_terms(cls, terms: Sequence[str], patterns: Mapping[str, str] | None = None,
                   source: str = "blacklist") -> "Blacklist":
        entries = []
        for term in terms:
            if not isinstance(term, (str, int)) or not str(term).strip():
                raise BlacklistError(f"{source}: terms: {term!r} is not a non-empty string")
            norm = normalize_text(str(term).strip())
            # whole words where the term begins/ends with a word character; emoji anywhere
            lead = r"(?<!\w)" if re.match(r"\w", norm) else ""
            tail = r"(?!\w)" if re.search(r"\w$", norm) else ""
            entries.append((norm, re.compile(lead + re.escape(norm) + tail)))
        for name, regex in (patterns or {}).items():
            try:
                entries.append((str(name), re.compile(str(regex))))
            except re.error as e:
                raise BlacklistError(f"{source}: patterns: {name}: not a regular expression ({e}); "
                                     "fix it or remove it") from None
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_BLACKLIST) -> "Blacklist":
        """Read a blacklist YAML file with ``terms:`` (a list) and ``patterns:`` (name: regex)."""
        import yaml

        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"blacklist {path} does not exist; pass an existing file "
                                    f"(the default is {DEFAULT_BLACKLIST})") from None
        except yaml.YAMLError as e:
            raise BlacklistError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(doc, dict) or set(doc) - {"terms", "patterns"}:
            raise BlacklistError(f"{path}: expected only the keys 'terms' (a list) and 'patterns' (name: regex)")
        terms, patterns = doc.get("terms") or [], doc.get("patterns") or {}
        if not isinstance(terms, list) or not isinstance(patterns, dict):
            raise BlacklistError(f"{path}: 'terms' must be a list and 'patterns' a mapping of name to regex")
        return cls.from_terms(terms, patterns, source=str(path))

    def find(self, text: str, source: str, post_id: str | None = None) -> list[Evidence]:
        """Every entry that occurs in ``text`` (first occurrence each), with context."""
        norm = normalize_text(text or "")
        found = []
        for term, regex in self.entries:
            m = regex.search(norm)
            if m:
                lo, hi = max(0, m.start() - CONTEXT_CHARS), min(len(norm), m.end() + CONTEXT_CHARS)
                context = ("…" if lo else "") + norm[lo:hi] + ("…" if hi < len(norm) else "")
                found.append(Evidence(source, post_id, term, context))
        return found


def hour_bin(timestamp: str) -> int:
    """The :data:`HOUR_BINS` index (0-3) of a post's hour, in the post's own offset (UTC
    when it has none). Raises ValueError for a timestamp that is not ISO-8601."""
    return _bin_of_hour(parse_timestamp(timestamp)[0].hour)


def _bin_of_hour(hour: int) -> int:
    return next(i for i, (lo, hi) in enumerate(HOUR_BINS) if lo <= hour < hi)


def with_known(known: Mapping[str, float], fallback: PostProbability) -> PostProbability:
    """A post-probability function that uses ``known[post id]`` where it has one (e.g. the
    out-of-fold probabilities of the labelled posts, so no model scores a post it was
    trained on) and ``fallback`` for the rest."""

    def probability(posts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.full(len(posts), np.nan)
        rest = [i for i, p in enumerate(posts) if str(p.get("id")) not in known]
        for i, p in enumerate(posts):
            if str(p.get("id")) in known:
                out[i] = known[str(p.get("id"))]
        if rest:
            out[rest] = np.asarray(fallback([posts[i] for i in rest]), np.float64)
        return out

    return probability


def attach_timelines(accounts: Sequence[Mapping[str, Any]], timelines: Mapping[str, Sequence[Mapping[str, Any]]]
                     ) -> tuple[list[dict], collections.Counter]:
    """Accounts with ``timeline`` from a username -> posts mapping (as
    :func:`drugjax.synthetic.world.plan` returns them); timelines of accounts that are not in
    ``accounts`` are left out and counted."""
    problems: collections.Counter = collections.Counter()
    names = {str(a["username"]) for a in accounts}
    for name, posts in timelines.items():
        if name not in names:
            problems[f"timeline of an account missing from the accounts (left out; {len(posts)} posts)"] += 1
    out = [{**a, "timeline": list(timelines.get(str(a["username"]), a.get("timeline") or []))} for a in accounts]
    return out, problems


@dataclasses.dataclass
class AccountTable:
    """Features of accounts, row per account in input order, with what explains them."""

    usernames: list[str]
    features: np.ndarray  # (n, len(FEATURE_NAMES))
    evidence: list[list[Evidence]]
    drug_posts: list[list[tuple[str, float]]]  # (post id, probability) of drug-related posts, most drug-like first
    timeline_sizes: np.ndarray  # posts counted in P (after duplicates are dropped)
    drug_hours: np.ndarray  # (n, 24) drug-related posts per hour of day (Figure 5b)
    problems: collections.Counter  # sentence -> number of accounts/posts it concerns

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES


def account_table(accounts: Sequence[Mapping[str, Any]], probability: PostProbability, *, threshold: float = 0.5,
                  blacklist: Blacklist | None = None, log_counts: bool = True,
                  evidence_sources: Sequence[str] = EVIDENCE_SOURCES) -> AccountTable:
    """The nine features of each account (see the module docstring); ``probability`` is
    called once, on every timeline post of every account."""
    blacklist = Blacklist.load() if blacklist is None else blacklist
    unknown = set(evidence_sources) - {"bio", "caption", "comment"}
    if unknown:
        raise ValueError(f"evidence_sources: {sorted(unknown)} unknown; choose among bio, caption, comment")
    problems: collections.Counter = collections.Counter()
    timelines: list[list[Mapping[str, Any]]] = []
    for account in accounts:
        seen, posts = set(), []
        for post in account.get("timeline") or []:
            key = str(post.get("id"))
            if key in seen:
                problems["duplicate post in a timeline (counted once)"] += 1
                continue
            seen.add(key)
            posts.append(post)
        timelines.append(posts)
    every = [p for posts in timelines for p in posts]
    prob_all = np.asarray(probability(every), np.float64) if every else np.zeros(0)
    if prob_all.shape != (len(every),) or np.isnan(prob_all).any():
        raise ValueError(f"the post-probability function returned {prob_all.shape} values with "
                         f"{int(np.isnan(prob_all).sum()) if prob_all.ndim == 1 else '?'} NaN for {len(every)} posts; "
                         "it must give one probability per post")

    rows, evidence, drug_posts, sizes, by_hour = [], [], [], [], []
    start = 0
    for account, posts in zip(accounts, timelines):
        prob = prob_all[start:start + len(posts)]
        start += len(posts)
        drug = [(p, float(q)) for p, q in zip(posts, prob) if q >= threshold]
        if not posts:
            problems["account without timeline posts (P and H1-H4 are 0; E reads the bio only)"] += 1
        hours, day = np.zeros(len(HOUR_BINS)), np.zeros(24)
        for post, _ in drug:
            try:
                hour = parse_timestamp(str(post.get("timestamp", "")))[0].hour
            except ValueError:
                problems["drug-related post without a readable timestamp (left out of H1-H4)"] += 1
                continue
            day[hour] += 1
            hours[_bin_of_hour(hour)] += 1
        by_hour.append(day)
        hours = hours / max(hours.sum(), 1)
        followers, following = _count(account, "followers", problems), _count(account, "following", problems)
        if followers == 0 and following == 0:
            problems["account with 0 followers and 0 following (R1-R3 are 0)"] += 1
        ratio = following / max(followers, 1)
        rel = [followers, following, ratio]
        if log_counts:
            rel = [math.log1p(v) for v in rel]
        bio = account.get("bio")
        if not isinstance(bio, str) or not bio.strip():
            problems["account without a bio (E reads its drug-related posts only)"] += 1
            bio = ""
        found = blacklist.find(bio, "bio")
        for post, _ in drug:
            pid = str(post.get("id"))
            found += blacklist.find(str(post.get("caption") or ""), "caption", pid)
            for comment in post.get("comments") or []:
                found += blacklist.find(str(comment), "comment", pid)
        has_evidence = any(e.source in evidence_sources for e in found)
        rows.append([len(drug) / len(posts) if posts else 0.0, *hours, *rel, float(has_evidence)])
        evidence.append(found)
        drug_posts.append(sorted(((str(p.get("id")), q) for p, q in drug), key=lambda t: -t[1]))
        sizes.append(len(posts))
    return AccountTable([str(a.get("username")) for a in accounts],
                        np.asarray(rows, np.float64).reshape(len(rows), len(FEATURE_NAMES)),
                        evidence, drug_posts, np.asarray(sizes, np.int64),
                        np.asarray(by_hour, np.float64).reshape(len(by_hour), 24), problems)


def _count(account: Mapping[str, Any], field: str, problems: collections.Counter) -> int:
    value = account.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        problems[f"account without a usable {field} count (taken as 0)"] += 1
        return 0
    return int(value)


class AccountFeatures(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: account records (with ``timeline``) -> the nine features.

    Stateless (``fit`` learns nothing); ``problems_`` and ``evidence_`` hold what the last
    ``transform`` met and found, for the report.
    """

    def __init__(self, probability: PostProbability | None = None, threshold: float = 0.5,
                 blacklist: Blacklist | None = None, log_counts: bool = True,
                 evidence_sources: Sequence[str] = EVIDENCE_SOURCES):
        self.probability = probability
        self.threshold = threshold
        self.blacklist = blacklist
        self.log_counts = log_counts
        self.evidence_sources = evidence_sources

    def fit(self, X: Sequence[Mapping[str, Any]], y: Any = None) -> "AccountFeatures":
        if self.probability is None:
            raise ValueError("AccountFeatures needs probability=: a function from posts to drug probabilities")
        self.n_features_in_ = len(FEATURE_NAMES)
        return self

    def transform(self, X: Sequence[Mapping[str, Any]]) -> np.ndarray:
        table = account_table(X, self.probability, threshold=self.threshold, blacklist=self.blacklist,
                              log_counts=self.log_counts, evidence_sources=self.evidence_sources)
        self.problems_, self.evidence_ = table.problems, table.evidence
        return table.features

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array(FEATURE_NAMES, dtype=object)
