"""A synthetic world in the dataset format: the embedded default data of drugjax.

``python -m drugjax.synthetic OUT --preset small|paper|tiny|deploy|hard --seed N [--image-size 96]``

The paper's data is not public, so drugjax ships a generator whose world has the paper's
shapes (preset ``paper``: 4,819 labelled posts of which 1,260 drug-related; 675 / 2,421 /
1,233 web images of weed / pills / syrup plus negatives; 206 drug-related accounts with up
to 200 timeline posts, 27 dealers by expert 1 and about 94 % agreement with expert 2) and
whose labels are carried by *content*, as on the real platform, not by structure:

* tag counts come from one heavy-tailed distribution (0-30) for both classes; dealers
  more often paste a long tag wall they copy from post to post, innocent influencers do
  too; general search terms ("plug", "gas", "trap", "high") find innocent posts as often;
* the vocabulary is Instagram's long tail: hundreds of tags with Zipf frequencies,
  evasive spellings (x@nax, p3rcs), emoji for words (🔌 🍃 💊 🍇), look-alike letters,
  Spanish tags, contact handles and link shorteners -- on both sides of the label;
* timeline posts were not found by search (empty ``query``) and are mostly unlabelled;
  accounts with timelines contribute both classes to posts.jsonl;
* pictures are JPEGs of varied size, aspect and quality with photographic texture,
  legible text (price menus, chats, memes) and per-account looks; half the web positives
  are phone photos and a third of the web negatives are stock shots, so style does not
  give the web label away;
* some drug posts show no drug and some innocent ones show confusers (vitamins, grape
  soda, houseplants), label noise falls on ambiguous posts, and the second expert's
  disagreements are drawn, partly from evidence the features cannot see.

All knobs are fields of :class:`WorldConfig` (documented in docs/data-format.md); a
preset is a WorldConfig. Same seed, same bytes: metadata comes from one seeded stream in
a fixed order, each image from its own seed, JSON with sorted keys, baseline JPEGs
without metadata.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import glob
import shutil
import socket
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from drugjax.errors import DiskFullError, full_disk_reported, print_error
from drugjax.runtime.progress import Progress
from drugjax.runtime.runlock import process_alive
from drugjax.synthetic import draw
from drugjax.synthetic import vocab
from drugjax.synthetic.vocab import ALL_TERMS, DICTIONARY, GENERAL_TERMS  # noqa: F401  (re-exported)

GENERATOR_VERSION = 4  # bump whenever the same seed would give different bytes

# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Sizes and knobs of a synthetic world (see docs/data-format.md for each).

    Pairs are (drug-related, innocent) or (dealer, non-dealer) unless said otherwise.
    """

    # sizes
    n_posts: int = 600
    n_drug_posts: int = 157
    n_web: tuple[int, int, int, int] = (60, 160, 90, 100)  # weed, pills, syrup, negative
    n_accounts: int = 40
    n_dealers: int = 6
    expert_agreement: float = 0.94  # expected; the number of disagreements is drawn binomially
    timeline_median: float = 28.0
    timeline_sigma: float = 0.35
    timeline_min: int = 8
    timeline_max: int = 60
    timeline_labelled: float = 0.25  # timeline posts that carry a drug label (the rest: null)
    n_other_accounts: int = 300
    timeline_accounts_in_posts: tuple[float, float] = (0.3, 0.15)  # labelled posts by an account with a timeline
    # post recognition difficulty
    drug_class_mix: tuple[float, float, float] = (0.5, 0.3, 0.2)  # weed, pills, syrup
    pos_image_nondrug: float = 0.22  # drug posts whose picture shows no drug
    neg_image_drug: float = 0.05  # innocent posts whose picture shows a drug (news, prescriptions)
    neg_image_confuser: float = 0.4  # innocent posts showing the confuser of their hashtag
    min_object: float = 0.3  # smallest drug object in a drug post's picture, share of the shorter side
    meme: float = 0.06  # pictures with words drawn in (memes), either class
    pos_text_explicit: float = 0.5  # drug posts with an explicit drug caption
    pos_text_explicit_nondrug_image: float = 0.7  # ... when the picture shows no drug
    neg_text_explicit: float = 0.05  # innocent posts with a drug-sounding caption (jokes, lyrics)
    drug_tag: tuple[float, float] = (0.7, 0.12)  # chance that each extra tag is a drug-scene tag
    tag_count: tuple[float, float] = (4.0, 0.85)  # tags per post ~ LogNormal(log median, sigma), 0-30, both classes
    tag_wall: tuple[float, float] = (0.22, 0.12)  # posts carrying their account's copied wall of 12-30 tags
    dealer_tag_wall: float = 0.45  # ... for a dealer's timeline posts
    misspell: float = 0.08  # per-word chance of a typo or slang spelling
    evasive: float = 0.2  # chance that a drug word is disguised (x@nax, 🍃, look-alike letters)
    contact: tuple[float, float] = (0.12, 0.05)  # captions with a contact or link (dealers; businesses)
    label_noise: float = 0.03  # share of labelled posts whose label is flipped, mostly ambiguous ones
    clutter_beta: tuple[float, float] = (1.5, 3.0)  # Instagram clutter ~ Beta(a, b)
    jpeg_quality: tuple[int, int] = (60, 95)  # JPEG quality, uniform in this range, every image
    image_scale: tuple[float, float] = (1.0, 1.25)  # shorter side = image_size x uniform(this)
    web_off_class: float = 0.06  # web images that show something else than their class
    web_negative_confuser: float = 0.33
    web_phone_share: float = 0.5  # web positives that are phone photos (Instagram style)
    web_negative_stock: float = 0.35  # web negatives that are stock or product shots (web style)
    repost: tuple[float, float] = (0.15, 0.03)  # timeline posts re-posting an earlier picture (dealer, other)
    utc_only: float = 0.1  # accounts whose timestamps are in UTC, not local time
    foreign_offset: float = 0.15  # accounts posting from outside the US
    # dealer signals: (dealer, non-dealer) parameters
    drug_share_beta: tuple[tuple[float, float], tuple[float, float]] = ((4.0, 5.0), (1.3, 5.0))
    night_share_beta: tuple[tuple[float, float], tuple[float, float]] = ((4.0, 4.0), (2.0, 5.0))
    log_followers: tuple[tuple[float, float], tuple[float, float]] = ((6.9, 1.2), (6.4, 1.3))
    log_following_ratio: tuple[tuple[float, float], tuple[float, float]] = ((-0.9, 0.9), (0.0, 0.9))
    bio_evidence: tuple[float, float] = (0.5, 0.1)
    comment_evidence: tuple[float, float] = (0.45, 0.1)
    hidden_evidence: float = 1.0  # weight of what only the experts saw (DMs, stories) in their disagreements


_PAPER_SIZES = dict(
    n_posts=4819,
    n_drug_posts=1260,
    n_web=(675, 2421, 1233, 2500),
    n_accounts=206,
    n_dealers=27,
    timeline_median=50.0,
    timeline_sigma=0.8,
    timeline_min=8,
    timeline_max=200,
    n_other_accounts=3000,
)

PRESETS: dict[str, WorldConfig] = {
    # The default everywhere: the whole pipeline (build, a few epochs on 2 CPU cores,
    # evaluation) runs in a few minutes.
    "small": WorldConfig(),
    # The paper's shapes (Sections 2.3 and 3).
    "paper": WorldConfig(**_PAPER_SIZES),
    # For unit tests: a handful of everything.
    "tiny": WorldConfig(
        n_posts=40,
        n_drug_posts=12,
        n_web=(6, 8, 6, 8),
        n_accounts=8,
        n_dealers=2,
        timeline_median=5.0,
        timeline_sigma=0.2,
        timeline_min=3,
        timeline_max=8,
        n_other_accounts=20,
    ),
    # A test set at deployment prevalence: 5 % of the posts a hashtag search returns are
    # drug-related (the paper's 26 % is a curated, balanced-ish sample).
    # label_noise flips as many positives as negatives: 0.006 keeps the paper preset's
    # share of mislabelled drug posts (72 of 1,260, about 6 %; 0.03 would flip 60 of 200).
    "deploy": WorldConfig(n_posts=4000, n_drug_posts=200, n_other_accounts=2000, label_noise=0.006),
    # Headroom: the paper's sizes with smaller objects, more confusers, noisier text.
    "hard": WorldConfig(
        **_PAPER_SIZES,
        pos_image_nondrug=0.32,
        neg_image_confuser=0.6,
        neg_image_drug=0.08,
        min_object=0.15,
        clutter_beta=(2.5, 2.0),
        pos_text_explicit=0.38,
        pos_text_explicit_nondrug_image=0.55,
        neg_text_explicit=0.08,
        drug_tag=(0.55, 0.16),
        misspell=0.15,
        evasive=0.45,
        label_noise=0.05,
    ),
}

# Offsets of the posters' local time; the posting hour is drawn in local time.
US_OFFSETS = ("-04:00", "-05:00", "-06:00", "-07:00", "-08:00")
FOREIGN_OFFSETS = ("+00:00", "+01:00", "+02:00", "-03:00", "+05:30", "+08:00", "+10:00", "-06:00")

# Hour-of-day weights (local time). Everyone posts mostly afternoon to evening ...
_DAY_HOURS = np.array([2, 1, 0.6, 0.4, 0.3, 0.3, 0.6, 1.2, 2, 2.5, 3, 3.5, 4, 4, 4, 4.5, 5, 5.5, 6, 6.5, 6.5, 6, 5, 3.5])
# ... but a drug post can come from the "night" window: midnight and the late night.
_NIGHT_HOURS = np.array([6, 5, 4, 3.5, 3, 2, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 2, 4.5])
_DAY_P = _DAY_HOURS / _DAY_HOURS.sum()
_NIGHT_P = _NIGHT_HOURS / _NIGHT_HOURS.sum()
# Labelled posts: the chance that a post comes from the night window (drug, innocent).
_NIGHT_LABELLED = (0.22, 0.1)

_EPOCH = dt.datetime(2016, 4, 1)
_ALNUM = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


# --------------------------------------------------------------------------- text


class _Sampler:
    """Draws from a ranked list with Zipf weights (cumulative table, one uniform per draw)."""

    def __init__(self, items: Sequence[str], s: float = 1.0):
        self.items = tuple(items)
        self.cum = np.cumsum(vocab.zipf(len(self.items), s))

    def __call__(self, rng: np.random.Generator) -> str:
        return self.items[min(int(np.searchsorted(self.cum, rng.random())), len(self.items) - 1)]


_GENERIC = _Sampler(vocab.GENERIC_TAGS, 1.0)
_SALES = _Sampler(vocab.SALES_TAGS, 0.9)
_GENERAL = _Sampler(GENERAL_TERMS, 0.6)
_DICT = {c: _Sampler(DICTIONARY[c], 1.0) for c in vocab.DRUG_CLASSES}
_SCENE = {c: _Sampler(DICTIONARY[c] + vocab.SCENE_TAGS[c], 0.9) for c in vocab.DRUG_CLASSES}
_DRUG_WORDS = set(vocab.EVASIVE) | set(vocab.EMOJI_FOR)


class _Text:
    """Caption, tag and comment generation from one seeded stream."""

    def __init__(self, rng: np.random.Generator, cfg: WorldConfig):
        self.rng = rng
        self.cfg = cfg
        self.walls: dict[str, list[str]] = {}
        # An account keeps its phone number, handle and link from post to post (and in its
        # bio), as real sellers and businesses do; ``speaking_as`` says whose text is drawn.
        self.contacts: dict[str, dict[str, str]] = {}
        self.speaker: str | None = None

    @contextlib.contextmanager
    def speaking_as(self, account: str) -> Iterator[None]:
        self.speaker = account
        try:
            yield
        finally:
            self.speaker = None

    def own(self, kind: str, make: Callable[[], str]) -> str:
        """The speaker's own contact of this kind (made on first use), or a fresh one."""
        if self.speaker is None:
            return make()
        mine = self.contacts.setdefault(self.speaker, {})
        if kind not in mine:
            mine[kind] = make()
        return mine[kind]

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    def phone(self) -> str:
        r = self.rng
        a, b, c = int(r.integers(201, 990)), int(r.integers(200, 999)), int(r.integers(1000, 9999))
        return self.pick([f"{a}-{b}-{c}", f"({a}) {b}-{c}", f"{a}.{b}.{c}", f"{a}{b}{c}"])

    def intl(self) -> str:
        r = self.rng
        cc = self.pick(["+1", "+44", "+52", "+34", "+49", "+61", "+31"])
        return f"{cc} {int(r.integers(100, 999))} {int(r.integers(100, 999))} {int(r.integers(1000, 9999))}"

    def handle(self) -> str:
        return self.pick(vocab.NAME_PARTS) + self.pick(vocab.NAME_PARTS) + str(int(self.rng.integers(1, 999)))

    def link(self) -> str:
        code = "".join(self.pick(_ALNUM) for _ in range(int(self.rng.integers(5, 8))))
        host = self.pick(vocab.SHORTENERS)
        return f"{host}/{self.handle() if host == 'linktr.ee' else code}"

    def fill(self, template: str, cls: str | None = None) -> str:
        out = template
        cls = cls or self.pick(vocab.DRUG_CLASSES)
        while "{" in out:
            key = out[out.index("{") + 1: out.index("}")]
            value = {
                "s": lambda: self.pick(vocab.SLANG[cls]),
                "u": lambda: self.pick(vocab.UNITS[cls]),
                "e": lambda: self.pick(vocab.DRUG_EMOJI),
                "n": lambda: str(int(self.rng.integers(2, 100))),
                "price": lambda: f"${int(self.rng.integers(1, 60)) * 5}",
                "cta": lambda: self.fill(self.pick(vocab.CTA)),
                "phone": lambda: self.own("phone", self.phone),
                "intl": lambda: self.own("intl", self.intl),
                "handle": lambda: self.own("handle", self.handle),
                "link": lambda: self.own("link", self.link),
                "city": lambda: self.pick(vocab.CITIES),
                "place": lambda: self.pick(vocab.GENERIC_CAPTION["place"]),
            }[key]()
            out = out.replace("{" + key + "}", value, 1)
        return out

    def disguise(self, word: str) -> str:
        """An evasive spelling, an emoji or look-alike letters for a drug word."""
        r = self.rng
        u = r.random()
        if word in vocab.EMOJI_FOR and u < 0.35:
            return vocab.EMOJI_FOR[word]
        if word in vocab.EVASIVE and u < 0.75:
            return self.pick(vocab.EVASIVE[word])
        letters = list(word)
        spots = [i for i, ch in enumerate(letters) if ch in vocab.LOOKALIKE]
        for i in spots[: 1 + int(r.integers(2))]:
            letters[i] = vocab.LOOKALIKE[letters[i]]
        return "".join(letters)

    def misspell(self, text: str) -> str:
        words = text.split(" ")
        r = self.rng
        for i, w in enumerate(words):
            if w in _DRUG_WORDS and r.random() < self.cfg.evasive:
                words[i] = self.disguise(w)
                continue
            if len(w) < 3 or r.random() >= self.cfg.misspell:
                continue
            k = int(r.integers(len(w) - 1))
            op = int(r.integers(5))
            if op == 0:
                w = w[:k] + w[k + 1] + w[k] + w[k + 2:]
            elif op == 1:
                w = w[:k] + w[k + 1:]
            elif op == 2:
                w = w[:k] + w[k] * 3 + w[k + 1:]
            else:
                w = {"you": "u", "your": "ur", "for": "4", "to": "2", "the": "da", "with": "wit",
                     "all": "al", "this": "dis", "that": "dat"}.get(w, w.upper() if op == 3 else w + w[-1] * 2)
            words[i] = w
        return " ".join(words)

    def noise(self, text: str) -> str:
        r = self.rng
        if r.random() < 0.25:
            text += " @" + self.handle()
        if r.random() < 0.35:
            text += " " + "".join(self.pick(vocab.EMOJI) for _ in range(int(r.integers(1, 4))))
        if r.random() < 0.12:
            text += " #" + _GENERIC(r)
        return text.strip()

    def caption(self, kind: str, cls: str, query: str | None) -> str:
        """kind: explicit (drug caption of class cls), innocent (a dictionary word in another
        sense), business (a small business's offer and contact), generic (an everyday
        sentence) or vague."""
        if kind == "explicit":
            text = self.fill(self.pick(vocab.EXPLICIT[cls]), cls)
        elif kind == "innocent":
            sense = "general" if query in GENERAL_TERMS else cls
            text = self.fill(self.pick(vocab.INNOCENT[sense]))
        elif kind == "business":
            text = self.fill(self.pick(vocab.BUSINESS))
        elif kind == "generic":
            g = vocab.GENERIC_CAPTION
            text = " ".join(x for x in (self.pick(g["subject"]), self.pick(g["verb"]), self.pick(g["place"]),
                                        self.pick(g["tail"])) if x)
        else:
            text = self.fill(self.pick(vocab.VAGUE))
        return self.noise(self.misspell(text))

    def tag_count(self) -> int:
        """How many tags a post carries: one heavy-tailed law for everybody (Instagram allows 30)."""
        median, sigma = self.cfg.tag_count
        return int(np.clip(round(math.exp(self.rng.normal(math.log(median), sigma))), 0, 30))

    def drug_tag(self, cls: str | None) -> str:
        """A tag of the drug scene (cls given: a drug post of that class) or a drug word used
        in passing by anybody (cls None)."""
        r = self.rng
        u = r.random()
        if cls:
            tag = _SCENE[cls](r) if u < 0.55 else (_SALES(r) if u < 0.75 else (
                _GENERAL(r) if u < 0.9 else _SCENE[self.pick(vocab.DRUG_CLASSES)](r)))
        else:
            tag = _GENERAL(r) if u < 0.45 else (_DICT[self.pick(vocab.DRUG_CLASSES)](r) if u < 0.85 else _SALES(r))
        return self.disguise(tag) if r.random() < self.cfg.evasive * 0.5 else tag

    def wall(self, account: str, drug_scene: bool, cls: str) -> list[str]:
        """The account's tag wall, made on first use and pasted under its posts from then on."""
        if account not in self.walls:
            r = self.rng
            n = int(r.integers(12, 31))
            tags: list[str] = []
            for _ in range(n):
                u = r.random()
                if drug_scene:
                    tags.append(self.drug_tag(cls) if u < 0.7 else _GENERIC(r))
                else:
                    tags.append(self.drug_tag(None) if u < 0.08 else _GENERIC(r))
            self.walls[account] = list(dict.fromkeys(tags))
        return self.walls[account]

    def tags(self, query: str | None, drug: bool, cls: str, account: str, wall_p: float,
             scene_account: bool) -> list[str]:
        """The post's tags: the query (if found by search) plus either the account's copied
        wall (chance wall_p) or a fresh handful drawn from the shared count law."""
        r = self.rng
        tags = [query] if query else []
        if r.random() < wall_p:
            wall = self.wall(account, scene_account or drug, cls)
            tags += [t for t in wall if r.random() > 0.1]  # copied, a few dropped on the way
        else:
            n = self.tag_count()
            p = self.cfg.drug_tag[0 if drug else 1]
            while len(tags) < n:
                tags.append(self.drug_tag(cls if drug else None) if r.random() < p else _GENERIC(r))
        seen = list(dict.fromkeys(tags))[:30]
        if query and query not in seen:
            seen[-1] = query
        order = r.permutation(len(seen))
        return [seen[i] for i in order]

    def comments(self, drug_p: float, evidence: bool) -> list[str]:
        r = self.rng
        out = []
        for _ in range(int(r.integers(0, 7))):
            if r.random() < drug_p:
                out.append(self.misspell(self.pick(vocab.DRUG_COMMENTS)))
            else:
                out.append(self.fill(self.pick(vocab.GENERIC_COMMENTS)))
        if evidence:
            out.append(self.fill(self.pick(vocab.EVIDENCE_COMMENTS)))
        return out


# --------------------------------------------------------------------------- world assembly


class ImageJob(NamedTuple):
    """Everything needed to draw and save one picture, independently of all others."""

    rel: str
    content: str
    style: str
    size: int  # shorter side
    aspect: float
    seed: tuple[int, ...]
    clutter: float
    menu: bool
    text: str | None
    look: tuple[int, ...] | None
    min_object: float
    quality: int
    repost: tuple[int, ...] | None  # a near-duplicate of the picture drawn from the other fields


class _Clock(NamedTuple):
    """An account's time zone: its local offset, and whether its timestamps are written in UTC."""

    offset: str
    utc_only: bool


def _unique_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        k = int(rng.integers(2, 4))
        parts = [vocab.NAME_PARTS[int(i)] for i in rng.integers(len(vocab.NAME_PARTS), size=k)]
        sep = ["", "_", "."][int(rng.integers(3))]
        name = sep.join(parts)
        if rng.random() < 0.6:
            name += str(int(rng.integers(1, 1000)))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _timestamp(rng: np.random.Generator, clock: _Clock, night_p: float, days: int = 300) -> str:
    hour = int(rng.choice(24, p=_NIGHT_P if rng.random() < night_p else _DAY_P))
    day = _EPOCH - dt.timedelta(days=int(rng.integers(1, days)))
    local = day.replace(hour=hour, minute=int(rng.integers(60)), second=int(rng.integers(60)))
    if not clock.utc_only:
        return local.strftime("%Y-%m-%dT%H:%M:%S") + clock.offset
    # what a downloader gives: the same instant in UTC, the local hour lost
    sign = -1 if clock.offset[0] == "-" else 1
    shift = dt.timedelta(hours=int(clock.offset[1:3]), minutes=int(clock.offset[4:6])) * sign
    return (local - shift).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"


def _image_content(rng: np.random.Generator, cfg: WorldConfig, drug: bool, cls: str) -> tuple[str, bool]:
    """(content, menu) of an Instagram post's picture; cls is the drug class or the hashtag's."""
    if drug:
        if rng.random() < cfg.pos_image_nondrug:
            c = str(rng.choice(["screenshot", "money", "selfie", "party", "car"], p=[0.35, 0.25, 0.2, 0.12, 0.08]))
            return c, c == "screenshot"
        return _drug_content(rng, cls), False
    u = rng.random()
    if u < cfg.neg_image_drug:
        return _drug_content(rng, str(rng.choice(list(DICTIONARY)))), False
    if u < cfg.neg_image_drug + cfg.neg_image_confuser:
        confusers = {"weed": ["green_food", "houseplant", "money"], "pills": ["vitamins", "vitamins", "screenshot"],
                     "syrup": ["purple_drink", "purple_drink", "party"]}[cls]
        return str(rng.choice(confusers)), False
    return str(rng.choice(draw.GENERIC_CONTENTS + ("screenshot", "food"))), False


def _drug_content(rng: np.random.Generator, cls: str) -> str:
    if cls == "weed":
        return str(rng.choice(["weed_leaf", "weed_bud", "joint"], p=[0.3, 0.5, 0.2]))
    if cls == "pills":
        return "pills"
    return str(rng.choice(["syrup_cup", "syrup_bottle"], p=[0.65, 0.35]))


def _ambiguous(drug: bool, content: str, caption_kind: str) -> bool:
    """Would an annotator hesitate? The picture and the caption do not both say the label."""
    shows_drug = content in draw.DRUG_CONTENTS
    if drug:
        return not shows_drug or caption_kind != "explicit"
    return shows_drug or content in draw.CONFUSER_CONTENTS or caption_kind in ("explicit", "innocent")


class _World:
    def __init__(self, cfg: WorldConfig, seed: int, image_size: int):
        self.cfg = cfg
        self.seed = seed
        self.size = image_size
        self.rng = np.random.default_rng([seed, 0])
        self.text = _Text(self.rng, cfg)
        self.jobs: list[ImageJob] = []
        self.job_of: dict[str, ImageJob] = {}  # post id -> its picture (for reposts)

    def look(self, account: str) -> tuple[int, ...]:
        """The account's visual habit: a seed of its own, independent of the drawing order."""
        return (self.seed, 9, zlib.crc32(account.encode("utf-8")))

    def clock(self) -> _Clock:
        r = self.rng
        u = r.random()
        offset = self.text.pick(FOREIGN_OFFSETS) if u < self.cfg.foreign_offset else self.text.pick(US_OFFSETS)
        return _Clock(offset, bool(r.random() < self.cfg.utc_only))

    def image(self, rel: str, content: str, style: str, stream: int, index: int, *, menu: bool = False,
              text: str | None = None, look: tuple[int, ...] | None = None, min_object: float = 0.0) -> ImageJob:
        cfg, r = self.cfg, self.rng
        clutter = float(r.beta(*cfg.clutter_beta)) if style == "instagram" else 0.0
        job = ImageJob(
            rel=rel, content=content, style=style,
            size=max(16, int(round(self.size * r.uniform(*cfg.image_scale)))),
            aspect=float(draw.ASPECTS[int(r.choice(len(draw.ASPECTS), p=draw.ASPECT_P))]),
            seed=(self.seed, stream, index), clutter=clutter, menu=menu, text=text, look=look,
            min_object=min_object, quality=int(r.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)),
            repost=None,
        )
        self.jobs.append(job)
        return job

    def post(self, *, pid: str, account: str, clock: _Clock, drug: bool, cls: str, query: str | None,
             image_rel: str, stream: int, index: int, night_p: float, wall_p: float, scene_account: bool,
             evidence: bool = False, contact: float = 0.0, repost_of: dict | None = None) -> tuple[dict, bool]:
        """One post and whether it is ambiguous (the picture and caption disagree with the label)."""
        cfg, r, t = self.cfg, self.rng, self.text
        if repost_of is not None:
            src = self.job_of[repost_of["id"]]
            content = src.content
            job = src._replace(rel=image_rel, quality=int(r.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)),
                               repost=(self.seed, 4, index))
            self.jobs.append(job)
        else:
            content, menu = _image_content(r, cfg, drug, cls)
            meme = str(t.pick(draw.MEME_LINES)) if r.random() < cfg.meme and content != "screenshot" else None
            blatant = drug and content in draw.DRUG_CONTENTS
            job = self.image(image_rel, content, "instagram", stream, index, menu=menu, text=meme,
                             look=self.look(account), min_object=cfg.min_object if blatant else 0.0)
        self.job_of[pid] = job
        if drug:
            p_exp = cfg.pos_text_explicit_nondrug_image if content not in draw.DRUG_CONTENTS else cfg.pos_text_explicit
            u = r.random()
            kind = "explicit" if u < p_exp else ("vague" if u < p_exp + (1 - p_exp) * 0.6 else (
                "innocent" if r.random() < 0.5 else "generic"))
        else:
            u = r.random()
            kind = "explicit" if u < cfg.neg_text_explicit else (
                "innocent" if u < 0.33 else ("business" if u < 0.4 else ("generic" if u < 0.75 else "vague")))
        with t.speaking_as(account):
            caption = t.caption(kind, cls, query)
            if r.random() < contact:
                caption += " " + t.fill(t.pick(vocab.CTA))
            tags = t.tags(query, drug, cls, account, wall_p, scene_account)
            comments = t.comments(0.3 if drug else 0.06, evidence)
        post = {
            "id": pid,
            "account": account,
            "image": job.rel,
            "caption": caption,
            "tags": tags,
            "comments": comments,
            "timestamp": _timestamp(r, clock, night_p),
            "query": query or "",
            "drug": int(drug),
            "synthetic_content": content,
        }
        if repost_of is not None:
            post["synthetic_repost_of"] = repost_of["id"]
        return post, _ambiguous(drug, content, kind)

    # ---- accounts and timelines
    def accounts(self) -> tuple[list[dict], dict[str, list[dict]]]:
        cfg, r, t = self.cfg, self.rng, self.text
        n = cfg.n_accounts
        names = _unique_names(r, n, self.taken)
        dealer = np.zeros(n, bool)
        dealer[r.permutation(n)[: cfg.n_dealers]] = True
        accounts, timelines, scores = [], {}, []
        for i, name in enumerate(names):
            d = int(not dealer[i])  # index 0: dealer parameters, 1: non-dealer
            p_drug = float(r.beta(*cfg.drug_share_beta[d]))
            night = float(r.beta(*cfg.night_share_beta[d]))
            followers = int(round(math.exp(r.normal(*cfg.log_followers[d])))) + int(r.integers(0, 20))
            following = int(round(followers * math.exp(r.normal(*cfg.log_following_ratio[d]))))
            bio_ev = bool(r.random() < cfg.bio_evidence[d])
            com_ev = bool(r.random() < cfg.comment_evidence[d])
            with t.speaking_as(name):
                bio = t.fill(t.pick(vocab.BIO_EVIDENCE if bio_ev else vocab.BIO_PLAIN))
            clock = self.clock()
            self.clocks[name] = clock
            classes = r.dirichlet([0.6, 0.6, 0.6])
            length = int(np.clip(round(math.exp(r.normal(math.log(cfg.timeline_median), cfg.timeline_sigma))),
                                 cfg.timeline_min, cfg.timeline_max))
            posts: list[dict] = []
            truth: list[bool] = []
            for k in range(length):
                self.timeline_index += 1
                repost_of = None
                if posts and r.random() < cfg.repost[d]:
                    j = int(r.integers(len(posts)))
                    repost_of, drug, cls = posts[j], truth[j], posts[j]["_cls"]
                else:
                    drug = bool(r.random() < p_drug)
                    cls = str(r.choice(list(DICTIONARY), p=classes)) if drug else str(r.choice(list(DICTIONARY)))
                post, _ = self.post(
                    pid=f"t-{name}-{k:03d}", account=name, clock=clock, drug=drug, cls=cls, query=None,
                    image_rel=f"images/timelines/{name}/{k:03d}.jpg", stream=3, index=self.timeline_index,
                    night_p=night if drug else 0.08, evidence=drug and com_ev and r.random() < 0.3,
                    contact=(0.25 if not d else 0.05) if drug else cfg.contact[1],
                    wall_p=cfg.dealer_tag_wall if not d else cfg.tag_wall[0 if drug else 1],
                    scene_account=not d, repost_of=repost_of,
                )
                # Timelines are downloaded, not annotated: only a sample carries a label.
                post["drug"] = int(drug) if r.random() < cfg.timeline_labelled else None
                post["_cls"] = cls
                posts.append(post)
                truth.append(drug)
            for p in posts:
                del p["_cls"]
            if com_ev and not any(truth):
                com_ev = False
            accounts.append({
                "username": name, "bio": bio, "followers": followers, "following": following,
                "expert1": int(dealer[i]), "expert2": int(dealer[i]),
            })
            timelines[name] = posts
            # how dealer-like the account looks to a reader: used to pick expert 2's disagreements
            scores.append(2.5 * p_drug + 1.5 * night - 0.6 * math.log((following + 1) / (followers + 1))
                          + 1.2 * bio_ev + 0.8 * com_ev)
        self._expert2(accounts, np.array(scores), dealer)
        return accounts, timelines

    def _expert2(self, accounts: list[dict], scores: np.ndarray, dealer: np.ndarray) -> None:
        """Expert 2 disagrees with expert 1 on Binomial(n, 1 - agreement) accounts.

        Like the paper's second expert (Table 2: 33 dealers against 27), they are more
        lenient: a quarter of the disagreements drop an expert-1 dealer that looks least
        dealer-like, three quarters add a non-dealer that looks most dealer-like. "Looks"
        is what the features show plus what only the experts saw (messages, stories):
        ``hidden_evidence`` weighs a per-account draw the features cannot see.
        """
        r = self.rng
        n = len(accounts)
        n_dis = int(r.binomial(n, 1 - self.cfg.expert_agreement))
        n_drop = min(int(n_dis * 0.25 + 0.5), int(dealer.sum()))
        n_add = min(n_dis - n_drop, int((~dealer).sum()))
        n_drop = min(n_dis - n_add, int(dealer.sum()))
        z = (scores - scores.mean()) / (scores.std() + 1e-9) + self.cfg.hidden_evidence * r.normal(0, 1, n)

        def draw_from(mask: np.ndarray, sign: float, k: int) -> np.ndarray:
            idx = np.flatnonzero(mask)
            if k == 0 or idx.size == 0:
                return idx[:0]
            w = np.exp(sign * (z[idx] - z[idx].mean()) / (z[idx].std() + 1e-9) * 1.5)
            return r.choice(idx, size=k, replace=False, p=w / w.sum())

        for i in draw_from(dealer, -1.0, n_drop):
            accounts[i]["expert2"] = 0
        for i in draw_from(~dealer, 1.0, n_add):
            accounts[i]["expert2"] = 1

    # ---- labelled posts
    def labelled_posts(self, drug_accounts: list[dict]) -> list[dict]:
        cfg, r, t = self.cfg, self.rng, self.text
        others = _unique_names(r, cfg.n_other_accounts, self.taken)
        for name in others:
            self.clocks[name] = self.clock()
        drug_names = [a["username"] for a in drug_accounts]
        dealers = {a["username"] for a in drug_accounts if a["expert1"]}
        truth = np.zeros(cfg.n_posts, bool)
        truth[r.permutation(cfg.n_posts)[: cfg.n_drug_posts]] = True
        posts, ambiguous = [], []
        for i in range(cfg.n_posts):
            drug = bool(truth[i])
            cls = str(r.choice(list(DICTIONARY), p=cfg.drug_class_mix)) if drug else str(r.choice(list(DICTIONARY)))
            # every labelled post was found by a dictionary hashtag; the general terms find
            # everybody, the drug names mostly the scene
            general = r.random() < (0.25 if drug else 0.4)
            query = _GENERAL(r) if general else _DICT[cls](r)
            with_timeline = drug_names and r.random() < cfg.timeline_accounts_in_posts[0 if drug else 1]
            account = t.pick(drug_names if with_timeline else others)
            dealer = account in dealers
            post, amb = self.post(
                pid=f"p{i:06d}", account=account, clock=self.clocks[account], drug=drug, cls=cls, query=query,
                image_rel=f"images/posts/p{i:06d}.jpg", stream=1, index=i,
                night_p=_NIGHT_LABELLED[0 if drug else 1],
                wall_p=cfg.dealer_tag_wall if dealer else cfg.tag_wall[0 if drug else 1],
                scene_account=dealer, contact=cfg.contact[0 if drug else 1],
            )
            posts.append(post)
            ambiguous.append(amb)
        # Annotation noise that keeps the labelled counts exact (as many true positives
        # labelled 0 as true negatives labelled 1), falling mostly on ambiguous posts:
        # an ambiguous post is 6 times as likely to be mislabelled as a clear one.
        n_flip = min(int(round(cfg.label_noise * cfg.n_posts / 2)), cfg.n_drug_posts, cfg.n_posts - cfg.n_drug_posts)
        weight = np.where(ambiguous, 6.0, 1.0)
        for side in (truth, ~truth):
            idx = np.flatnonzero(side)
            if n_flip and idx.size:
                for j in r.choice(idx, n_flip, replace=False, p=weight[idx] / weight[idx].sum()):
                    posts[j]["drug"] = 1 - posts[j]["drug"]
        return posts

    # ---- web images
    def web(self) -> list[dict]:
        cfg, r = self.cfg, self.rng
        out = []
        i = 0
        for cls, n in zip(("weed", "pills", "syrup", "negative"), cfg.n_web):
            for _ in range(n):
                if cls == "negative":
                    # randomly collected Instagram posts: mostly everyday phone pictures, some
                    # confusers, the odd drug picture that random sampling catches -- and
                    # stock shots (vitamins, grape soda, houseplants, food, pets) that people repost.
                    if r.random() < cfg.web_negative_stock:
                        style = "web"
                        content = str(r.choice(["vitamins", "purple_drink", "houseplant", "green_food"]
                                               if r.random() < 0.5 else ["food", "pet", "landscape", "car"]))
                    else:
                        style = "instagram"
                        u = r.random()
                        if u < 0.02:
                            content = _drug_content(r, str(r.choice(list(DICTIONARY))))
                        elif u < 0.02 + cfg.web_negative_confuser:
                            content = str(r.choice(draw.CONFUSER_CONTENTS))
                        else:
                            content = str(r.choice(draw.GENERIC_CONTENTS))
                    query = "random"
                else:
                    if r.random() < cfg.web_off_class:  # search engines return noise too
                        content = str(r.choice(["screenshot", "money", "selfie", "landscape", "food"]))
                    else:
                        content = _drug_content(r, cls)
                    # half the search results are somebody's phone photo, half product shots
                    style = "instagram" if r.random() < cfg.web_phone_share else "web"
                    query = _DICT[cls](r)
                rel = f"images/web/{cls}/w{i:05d}.jpg"
                job = self.image(rel, content, style, 2, i)
                out.append({"id": f"w{i:05d}", "image": job.rel, "class": cls, "query": query,
                            "synthetic_content": content})
                i += 1
        return out

    def build(self) -> tuple[list[dict], list[dict], list[dict], dict[str, list[dict]]]:
        self.taken: set[str] = set()
        self.clocks: dict[str, _Clock] = {}
        self.timeline_index = 0
        accounts, timelines = self.accounts()
        posts = self.labelled_posts(accounts)
        web = self.web()
        return posts, web, accounts, timelines


# --------------------------------------------------------------------------- writing


def draw_job(job: ImageJob) -> np.ndarray:
    """The picture of one job, as uint8 (height, width, 3)."""
    arr = draw.render(job.content, job.style, job.size, job.seed, clutter=job.clutter, menu=job.menu,
                      aspect=job.aspect, text=job.text, look=job.look, min_object=job.min_object)
    return draw.repost(arr, job.repost) if job.repost is not None else arr


def _render_chunk(jobs: list[ImageJob], root: str) -> int:
    for job in jobs:
        draw.save_jpeg(draw_job(job), os.path.join(root, job.rel), job.quality)
    return len(jobs)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")


def _is_previous_world(path: Path) -> bool:
    """True only for a folder this generator wrote: its world.json names the generator.

    A posts.jsonl alone proves nothing (a researcher's own dataset has one), and a folder
    that is not ours is never replaced.
    """
    try:
        meta = json.loads((path / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == "drugjax.synthetic.world"


def _plan_world(preset: str, seed: int, image_size: int, knobs: dict[str, Any]) -> "_World":
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    unknown = sorted(set(knobs) - {f.name for f in dataclasses.fields(WorldConfig)})
    if unknown:
        raise ValueError(f"unknown knobs {unknown}; see WorldConfig for the knobs")
    cfg = dataclasses.replace(PRESETS[preset], **knobs)
    if not 0 <= cfg.n_drug_posts <= cfg.n_posts or not 0 <= cfg.n_dealers <= cfg.n_accounts:
        raise ValueError("need 0 <= n_drug_posts <= n_posts and 0 <= n_dealers <= n_accounts")
    world = _World(cfg, seed, image_size)
    world.records = world.build()
    return world


def plan(
    preset: str = "small", seed: int = 0, image_size: int = 96, **knobs: Any
) -> tuple[list[dict], list[dict], list[dict], dict[str, list[dict]]]:
    """The records :func:`generate` would write, without drawing any image (fast).

    Returns ``(posts, web, accounts, timelines)``; timelines maps usernames to posts.
    """
    return _plan_world(preset, seed, image_size, knobs).records


def plan_images(preset: str = "small", seed: int = 0, image_size: int = 96, **knobs: Any) -> dict[str, ImageJob]:
    """The pictures :func:`generate` would draw, by path relative to ROOT, without drawing them.

    ``draw_job(job)`` draws one; ``draw.save_jpeg(array, file, job.quality)`` encodes it to
    the bytes ``generate`` writes (e.g. for probes on a sample, without writing a world).
    """
    return {job.rel: job for job in _plan_world(preset, seed, image_size, knobs).jobs}


def generate(
    out: str | Path,
    preset: str = "small",
    seed: int = 0,
    image_size: int = 96,
    *,
    workers: int | None = None,
    **knobs: Any,
) -> Path:
    """Write a complete synthetic dataset ROOT at ``out`` and return its path.

    Args:
      out: destination folder. It must not exist, be empty, or hold an earlier world
        (which is replaced); the world is written beside it first and moved into place,
        so a half-written world is never seen.
      preset: ``"small"`` (default), ``"paper"``, ``"tiny"``, ``"deploy"`` (5 % drug-related)
        or ``"hard"`` (the paper's sizes, harder content).
      seed: everything follows from it; same seed, same bytes.
      image_size: the pictures' shorter side is image_size to 1.25 x image_size pixels
        (``image_scale``); their aspect ratio varies from 4:5 to 1.91:1.
      workers: processes drawing images (None: up to 4 from 5,000 images on, else 1).
        The bytes do not depend on it.
      knobs: overrides of :class:`WorldConfig` fields.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder; choose an empty or new folder")
    if out.exists() and any(out.iterdir()) and not _is_previous_world(out):
        raise FileExistsError(
            f"{out} is not empty and was not written by this generator (no world.json naming "
            "drugjax.synthetic.world); nothing was changed. Choose an empty or new folder")
    world = _plan_world(preset, seed, image_size, knobs)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_killed_builds(out)
    # A fresh folder of our own beside the target: nothing that exists is reused. Its name
    # says whose it is, so that the next build can remove it if this one is killed.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{socket.gethostname()}-{os.getpid()}-", dir=out.parent))
    try:
        with full_disk_reported(f"the world {out}", then="no half-written world is left"):
            _write_world(world, tmp, preset, seed, image_size, knobs, workers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ours alone: made above by mkdtemp
        raise
    if out.exists():
        shutil.rmtree(out)  # an earlier world of ours, checked above
    os.replace(tmp, out)
    return out


def _remove_killed_builds(out: Path) -> None:
    """Remove the temporary folders that builds into ``out`` on this host left when they
    were killed (a SIGKILL leaves no chance to clean up): those whose process is gone. A
    live build's folder, and other hosts' (on a shared file system), are left alone."""
    prefix = f".{out.name}.tmp-{socket.gethostname()}-"
    for leftover in out.parent.glob(f"{glob.escape(prefix)}*"):
        pid = leftover.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _write_world(world: "_World", tmp: Path, preset: str, seed: int, image_size: int,
                 knobs: dict[str, Any], workers: int | None) -> None:
    posts, web, accounts, timelines = world.records
    dirs = {str(Path(job.rel).parent) for job in world.jobs}
    for d in sorted(dirs) + ["timelines"]:
        (tmp / d).mkdir(parents=True, exist_ok=True)
    jobs = world.jobs
    if workers is None:
        workers = 1 if len(jobs) < 5000 else min(4, os.cpu_count() or 1)  # spawn costs ~1 s a worker
    chunks = [jobs[i: i + 256] for i in range(0, len(jobs), 256)]
    with Progress(len(jobs), f"drawing the {preset} world's pictures", unit="img") as bar:
        if workers <= 1:
            for chunk in chunks:
                bar.update(_render_chunk(chunk, str(tmp)))
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork: the caller may hold JAX threads
            with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                for drawn in pool.map(_render_chunk, chunks, [str(tmp)] * len(chunks)):
                    bar.update(drawn)

    _write_jsonl(tmp / "posts.jsonl", posts)
    _write_jsonl(tmp / "web.jsonl", web)
    _write_jsonl(tmp / "accounts.jsonl", accounts)
    for name, tl in timelines.items():
        _write_jsonl(tmp / "timelines" / f"{name}.jsonl", tl)
    counts = world_counts(posts, web, accounts, timelines)
    meta = {
        "generator": "drugjax.synthetic.world",
        "version": GENERATOR_VERSION,
        "preset": preset,
        "seed": seed,
        "image_size": image_size,
        "knobs": {k: v for k, v in sorted(knobs.items())},
        "counts": counts,
    }
    (tmp / "world.json").write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n", encoding="utf-8")


def world_counts(posts: list[dict], web: list[dict], accounts: list[dict], timelines: dict[str, list[dict]]) -> dict:
    """The headline counts of a world (what the paper reports)."""
    web_by = {c: sum(1 for w in web if w["class"] == c) for c in ("weed", "pills", "syrup", "negative")}
    lengths = [len(v) for v in timelines.values()]
    return {
        "posts": len(posts),
        "drug_posts": sum(p["drug"] for p in posts),
        "web": web_by,
        "accounts": len(accounts),
        "dealers_expert1": sum(a["expert1"] for a in accounts),
        "dealers_expert2": sum(a["expert2"] for a in accounts),
        "expert_agreement": sum(a["expert1"] == a["expert2"] for a in accounts),
        "timeline_posts": sum(lengths),
        "timeline_max": max(lengths, default=0),
        "images": sum(1 for p in posts if p["image"]) + len(web) + sum(1 for v in timelines.values() for p in v if p["image"]),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m drugjax.synthetic",
                                     description="Write a synthetic world in the drugjax dataset format.")
    parser.add_argument("out", help="destination folder (new, empty, or an earlier world to replace)")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--workers", type=int, default=None, help="processes drawing images (default: auto)")
    args = parser.parse_args(argv)
    import time

    t0 = time.perf_counter()
    try:
        root = generate(args.out, args.preset, args.seed, args.image_size, workers=args.workers)
    except (ValueError, FileExistsError) as e:
        print_error(e)
        return 2
    except DiskFullError as e:
        print_error(e)
        return 1
    meta = json.loads((root / "world.json").read_text())
    c = meta["counts"]
    print(f"wrote {root} (preset {args.preset}, seed {args.seed}, {args.image_size} px) in {time.perf_counter() - t0:.1f} s")
    print(f"  posts.jsonl      {c['posts']} labelled posts, {c['drug_posts']} drug-related")
    w = c["web"]
    print(f"  web.jsonl        {sum(w.values())} web images: {w['weed']} weed, {w['pills']} pills, "
          f"{w['syrup']} syrup, {w['negative']} negative")
    print(f"  accounts.jsonl   {c['accounts']} accounts, {c['dealers_expert1']} dealers by expert 1, "
          f"{c['dealers_expert2']} by expert 2, experts agree on {c['expert_agreement']}")
    print(f"  timelines/       {c['timeline_posts']} posts (at most {c['timeline_max']} per account)")
    print(f"  images/          {c['images']} JPEG files")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... | head`: the reader left
        sys.stderr.close()
        sys.exit(141)
