"""A synthetic world in the dataset format: the embedded default data of drugjax.

``python -m drugjax.data.synthetic OUT --preset small|paper|tiny --seed N [--image-size 96]``

The paper's data is not public, so drugjax ships a generator whose world has the paper's
shapes (preset ``paper``: 4,819 labelled posts of which 1,260 drug-related; 675 / 2,421 /
1,233 web images of weed / pills / syrup plus negatives; 206 drug-related accounts with up
to 200 timeline posts, 27 dealers by expert 1 and 94 % agreement with expert 2) and whose
signals are real but imperfect, so that the paper's comparisons mean something:

* every labelled post carries a dictionary hashtag (its ``query``), so tags alone are
  weak evidence; drug posts use more slang, emoji and drug tags, but innocent posts use
  the same words in other senses ("leg day, stay lean", "spitting bars");
* a share of drug posts shows no drug in the picture (a price-menu screenshot, money, a
  selfie) and some innocent posts show confusers chosen by the hashtag that found them
  (vitamins for #pills, green food and houseplants for #weed, grape soda for #lean), so
  the image classifier is imperfect too, and its errors are nearly independent of the
  text's — which is what makes late fusion pay;
* web images share the object drawers with Instagram images but not their style (clean
  white backgrounds, watermarks vs clutter, filters, noise): knowledge transfers, the
  domain differs;
* dealers post more drug content, more of it around midnight and late at night, follow
  fewer accounts per follower, and show transaction evidence (phone numbers, "dm to
  order", shipping, payment apps) in bio and comments more often — every signal
  overlapping between dealers and non-dealers.

All knobs are fields of :class:`WorldConfig` (documented in docs/data-format.md); a
preset is a WorldConfig. Same seed, same bytes: metadata comes from one seeded stream in
a fixed order, each image from its own seed, JSON with sorted keys, PNGs without
timestamps.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from drugjax.data import draw

GENERATOR_VERSION = 3  # bump whenever the same seed would give different bytes

# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Sizes and knobs of a synthetic world (see docs/data-format.md for each)."""

    # sizes
    n_posts: int = 600
    n_drug_posts: int = 157
    n_web: tuple[int, int, int, int] = (60, 160, 90, 100)  # weed, pills, syrup, negative
    n_accounts: int = 40
    n_dealers: int = 6
    expert_agreement: float = 0.94
    timeline_median: float = 28.0
    timeline_sigma: float = 0.35
    timeline_min: int = 8
    timeline_max: int = 60
    n_other_accounts: int = 300
    # post recognition difficulty
    drug_class_mix: tuple[float, float, float] = (0.5, 0.3, 0.2)  # weed, pills, syrup
    pos_image_nondrug: float = 0.22  # drug posts whose picture shows no drug
    neg_image_drug: float = 0.05  # innocent posts whose picture shows a drug (news, prescriptions)
    neg_image_confuser: float = 0.4  # innocent posts showing the confuser of their hashtag
    pos_text_explicit: float = 0.55  # drug posts with an explicit drug caption
    pos_text_explicit_nondrug_image: float = 0.75  # ... when the picture shows no drug
    neg_text_explicit: float = 0.06  # innocent posts with a drug-sounding caption (jokes, lyrics)
    pos_drug_tag: float = 0.65  # chance that each extra tag of a drug post is a dictionary term
    neg_drug_tag: float = 0.15  # same for innocent posts
    misspell: float = 0.08  # per-word chance of a typo or slang spelling
    label_noise: float = 0.03  # share of labelled posts whose label is flipped (annotation error)
    clutter_beta: tuple[float, float] = (1.5, 3.0)  # Instagram clutter ~ Beta(a, b)
    web_off_class: float = 0.06  # web images that show something else than their class
    web_negative_confuser: float = 0.33
    # dealer signals: (dealer, non-dealer) parameters
    drug_share_beta: tuple[tuple[float, float], tuple[float, float]] = ((4.0, 5.0), (1.3, 5.0))
    night_share_beta: tuple[tuple[float, float], tuple[float, float]] = ((4.0, 4.0), (2.0, 5.0))
    log_followers: tuple[tuple[float, float], tuple[float, float]] = ((6.9, 1.2), (6.4, 1.3))
    log_following_ratio: tuple[tuple[float, float], tuple[float, float]] = ((-0.9, 0.9), (0.0, 0.9))
    bio_evidence: tuple[float, float] = (0.5, 0.1)
    comment_evidence: tuple[float, float] = (0.45, 0.1)


PRESETS: dict[str, WorldConfig] = {
    # The default everywhere: the whole pipeline (build, a few epochs on 2 CPU cores,
    # evaluation) runs in a few minutes.
    "small": WorldConfig(),
    # The paper's shapes (Sections 2.3 and 3).
    "paper": WorldConfig(
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
    ),
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
}


# --------------------------------------------------------------------------- vocabulary

DICTIONARY: dict[str, tuple[str, ...]] = {
    "weed": ("weed", "kush", "420", "marijuana", "ganja", "dank", "loud", "gas", "cannabis", "thc",
             "blunt", "stoner", "710", "edibles", "og"),
    "pills": ("xanax", "xans", "bars", "percocet", "percs", "oxy", "molly", "adderall", "pills",
              "roxy", "norco", "lortab", "perc30"),
    "syrup": ("lean", "sizzurp", "purpledrank", "codeine", "actavis", "promethazine", "drank",
              "dirtysprite", "wockhardt", "doublecup"),
}
GENERAL_TERMS = ("plug", "dope", "high", "trap", "connect")
ALL_TERMS: tuple[str, ...] = tuple(t for v in DICTIONARY.values() for t in v) + GENERAL_TERMS

SLANG = {
    "weed": ["loud", "gas", "za", "exotic", "top shelf", "zaza", "fire buds", "og kush", "purple haze",
             "sour diesel", "gelato", "runtz", "dabs", "wax", "prerolls", "eighths", "zips", "qp"],
    "pills": ["xans", "bars", "percs", "blues", "m30s", "roxys", "yellow school buses", "white bars",
              "green hulks", "addys", "mollies", "footballs", "beans"],
    "syrup": ["lean", "drank", "sizzurp", "wock", "act", "tris", "hi-tech", "purple", "codeine",
              "the muddy", "double cup", "pints", "4s"],
}
DRUG_EMOJI = ["🍃", "🌿", "💨", "🔥", "🍁", "💊", "💜", "🍇", "🥤", "😵", "🤑", "💰", "📦", "🚀", "⛽"]
EMOJI = ["😂", "❤️", "🙌", "😍", "✨", "🎉", "🎶", "📸", "👀", "💯", "😎", "🙏", "🥰", "😭", "🤷"]
# Hashtags of the drug scene beyond the search dictionary (what posters add to be found).
SCENE_TAGS = ("plugwalk", "420life", "xanaxbars", "leanlife", "weedporn", "kushlife", "stonernation",
              "highlife", "dabs", "smokeweedeveryday", "trippy", "purplelean", "xanaxnation", "cannabiscommunity",
              "thcgang", "dispensary", "plugsonly", "pharmacy", "codeinecrazy", "dankmemes")
GENERIC_TAGS = ("love", "instagood", "photooftheday", "tbt", "fitness", "food", "music", "weekend",
                "party", "selfie", "nature", "friends", "happy", "style", "follow", "mood", "life",
                "summer", "fun", "art", "beautiful", "gym", "hiphop", "cute")

EXPLICIT = {
    "weed": ["got that {s} {e}", "{s} just landed {e}{e}", "who need {s}? {e}", "smokin {s} all day {e}",
             "fresh batch of {s} {e} {cta}", "rolling up some {s} {e}", "{s} {s} {s} {e}",
             "wake n bake with the {s} {e}", "this {s} hits different {e}"],
    "pills": ["popped a couple {s} {e}", "{s} in stock {e} {cta}", "got {s} for the low {e}",
              "{n} {s} left {e}", "plug came thru with the {s} {e}", "need {s}? {cta}",
              "{s} and chill {e}", "real {s} not pressed {e}"],
    "syrup": ["sippin {s} all day {e}", "pour up the {s} {e}", "{s} got me slow {e}",
              "double cup of {s} {e}", "{s} season {e} {cta}", "muddy {s} {e}{e}",
              "real {s} no fake {e}", "lil {s} to start the day {e}"],
}
VAGUE = ["vibes", "mood", "lol", "tb", "no caption needed", "good times w the squad", "weekend",
         "feeling myself", "late night", "who up", "u already know", "lit", "", "smh", "that's it",
         "blessed", "chillin", "new week new me", "rate 1-10", "caption this"]
INNOCENT = {
    "weed": ["pulled weeds all morning 🌱", "gas prices are crazy", "this song is loud af", "happy 420 to my bday twin",
             "stoner rock night 🎸", "kush clothing drop is live", "weed killer for the lawn works", "og squad reunion"],
    "pills": ["taking my vitamins 💊 #health", "spitting bars 🎤", "molly's bday party 🎉", "pills for this migraine ugh",
              "new bars on the track", "adderall shortage is real, called the pharmacy", "gym bars and plates"],
    "syrup": ["leg day, stay lean 💪", "grape soda hits different 🍇", "drank too much coffee", "lean bulk week 4",
              "cough syrup and tea, so sick 🤒", "purple drink at the fair", "lean on me 🎶"],
}
CTA = ["dm to order", "dm for prices", "hmu", "text {phone}", "ship nationwide 📦", "discreet shipping",
       "cashapp ${handle}", "venmo @{handle}", "paypal accepted", "snap: {handle}", "kik me {handle}",
       "wickr: {handle}", "menu in bio", "serious buyers only", "overnight delivery", "prices in dm"]
GENERIC_COMMENTS = ["🔥🔥", "nice", "love this", "where u at", "😂😂😂", "goals", "lit", "😍", "facts", "bro",
                    "miss u", "yesss", "wow", "💯", "lmaooo", "same", "omg", "cute"]
DRUG_COMMENTS = ["how much?", "price?", "plug??", "u ship to ny?", "need that", "still got some?", "lemme get a zip",
                 "how much for 10", "u deliver?", "where u located", "legit?"]
EVIDENCE_COMMENTS = ["dm me", "text {phone}", "cashapp only ${handle}", "ship nationwide 📦", "check dm",
                     "venmo @{handle}", "same day delivery", "dm for menu", "snap {handle}"]
BIO_PLAIN = ["just vibes", "🎧 music lover", "22 | {city}", "living my best life", "don't follow me i'm lost too",
             "🌿 stoner life", "artist | dreamer", "{city} 📍", "mom of 2 ❤️", "gym rat 💪", "420 friendly 🍃",
             "sippin & vibin 💜", "rip bro 🙏", "ig: {handle}", "", "snap: {handle}", "no days off"]
BIO_EVIDENCE = ["dm to order 📦", "text {phone} for menu", "ship worldwide 🌎 cashapp ${handle}", "plug 🔌 dm for prices",
                "wickr: {handle} | overnight delivery", "venmo @{handle} | discreet shipping",
                "menu in highlights 💊 serious buyers only", "call/text {phone}"]
CITIES = ["LA", "NYC", "ATL", "HTX", "Chi", "Miami", "Bay Area", "Detroit", "Denver", "Philly", "Seattle", "Vegas"]
NAME_PARTS = ["kush", "plug", "xan", "lean", "og", "trap", "dank", "cali", "purp", "gas", "loud", "smoke",
              "lil", "big", "young", "baby", "king", "queen", "real", "the", "its", "official", "mr", "miss",
              "jay", "sarah", "mike", "ash", "tony", "kay", "dre", "nina", "luis", "ari", "zoe", "sam", "max",
              "vibes", "life", "gang", "boy", "girl", "world", "music", "art", "daily", "fit", "chef"]
# US offsets of the posters' local time; the posting hour is read in this local time.
OFFSETS = ["-04:00", "-05:00", "-06:00", "-07:00", "-08:00"]

# Hour-of-day weights (local time). Everyone posts mostly afternoon to evening ...
_DAY_HOURS = np.array([2, 1, 0.6, 0.4, 0.3, 0.3, 0.6, 1.2, 2, 2.5, 3, 3.5, 4, 4, 4, 4.5, 5, 5.5, 6, 6.5, 6.5, 6, 5, 3.5])
# ... but a drug post can come from the "night" window: midnight and the late night.
_NIGHT_HOURS = np.array([6, 5, 4, 3.5, 3, 2, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 2, 4.5])
_DAY_P = _DAY_HOURS / _DAY_HOURS.sum()
_NIGHT_P = _NIGHT_HOURS / _NIGHT_HOURS.sum()

_EPOCH = dt.datetime(2016, 4, 1)


# --------------------------------------------------------------------------- text


class _Text:
    """Caption, tag and comment generation from one seeded stream."""

    def __init__(self, rng: np.random.Generator, cfg: WorldConfig):
        self.rng = rng
        self.cfg = cfg

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    def phone(self) -> str:
        r = self.rng
        a, b, c = int(r.integers(201, 990)), int(r.integers(200, 999)), int(r.integers(1000, 9999))
        return self.pick([f"{a}-{b}-{c}", f"({a}) {b}-{c}", f"{a}.{b}.{c}", f"{a}{b}{c}"])

    def handle(self) -> str:
        return self.pick(NAME_PARTS) + self.pick(NAME_PARTS) + str(int(self.rng.integers(1, 999)))

    def fill(self, template: str, cls: str | None = None) -> str:
        out = template
        while "{" in out:
            key = out[out.index("{") + 1: out.index("}")]
            value = {
                "s": lambda: self.pick(SLANG[cls or "weed"]),
                "e": lambda: self.pick(DRUG_EMOJI),
                "n": lambda: str(int(self.rng.integers(2, 100))),
                "cta": lambda: self.fill(self.pick(CTA)),
                "phone": self.phone,
                "handle": self.handle,
                "city": lambda: self.pick(CITIES),
            }[key]()
            out = out.replace("{" + key + "}", value, 1)
        return out

    def misspell(self, text: str) -> str:
        words = text.split(" ")
        r = self.rng
        for i, w in enumerate(words):
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
        if r.random() < 0.2:
            text += " @" + self.handle()
        if r.random() < 0.15:
            text += " " + "".join(self.pick(EMOJI) for _ in range(int(r.integers(1, 4))))
        if r.random() < 0.1:
            text += " #" + self.pick(GENERIC_TAGS)
        if r.random() < 0.05:
            text += " link in bio"
        return text.strip()

    def caption(self, kind: str, cls: str | None) -> str:
        """kind: explicit (drug caption of class cls), innocent (dictionary word, other sense), vague."""
        if kind == "explicit":
            text = self.fill(self.pick(EXPLICIT[cls]), cls)
        elif kind == "innocent":
            text = self.pick(INNOCENT[cls or self.pick(list(DICTIONARY))])
        else:
            text = self.fill(self.pick(VAGUE))
        return self.noise(self.misspell(text))

    def tags(self, query: str, drug_p: float, cls: str | None) -> list[str]:
        """The query tag plus extra tags; drug posts (cls given) stuff more tags, from
        their drug's dictionary and the scene's own tags, innocent ones fewer."""
        r = self.rng
        tags = [query]
        for _ in range(int(r.integers(1, 12) if cls else r.integers(0, 9))):
            if r.random() < drug_p:
                u = r.random()
                if cls:
                    pool = DICTIONARY[cls] if u < 0.5 else (SCENE_TAGS if u < 0.8 else ALL_TERMS)
                else:
                    pool = ALL_TERMS if u < 0.85 else SCENE_TAGS
                tags.append(self.pick(pool))
            else:
                tags.append(self.pick(GENERIC_TAGS))
        # order as the poster typed them; duplicates dropped, the query tag kept
        seen: list[str] = []
        for t in tags:
            if t not in seen:
                seen.append(t)
        order = r.permutation(len(seen))
        return [seen[i] for i in order]

    def comments(self, drug_p: float, evidence: bool) -> list[str]:
        r = self.rng
        out = []
        for _ in range(int(r.integers(0, 7))):
            if r.random() < drug_p:
                out.append(self.misspell(self.pick(DRUG_COMMENTS)))
            else:
                out.append(self.pick(GENERIC_COMMENTS))
        if evidence:
            out.append(self.fill(self.pick(EVIDENCE_COMMENTS)))
        return out


# --------------------------------------------------------------------------- world assembly


def _unique_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        k = int(rng.integers(2, 4))
        parts = [NAME_PARTS[int(i)] for i in rng.integers(len(NAME_PARTS), size=k)]
        sep = ["", "_", "."][int(rng.integers(3))]
        name = sep.join(parts)
        if rng.random() < 0.6:
            name += str(int(rng.integers(1, 1000)))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _timestamp(rng: np.random.Generator, offset: str, night_p: float, days: int = 300) -> str:
    hour = int(rng.choice(24, p=_NIGHT_P if rng.random() < night_p else _DAY_P))
    day = _EPOCH - dt.timedelta(days=int(rng.integers(1, days)))
    ts = day.replace(hour=hour, minute=int(rng.integers(60)), second=int(rng.integers(60)))
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + offset


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


class _World:
    def __init__(self, cfg: WorldConfig, seed: int, image_size: int):
        self.cfg = cfg
        self.seed = seed
        self.size = image_size
        self.rng = np.random.default_rng([seed, 0])
        self.text = _Text(self.rng, cfg)
        self.jobs: list[tuple] = []  # (relpath, content, style, size, seed, clutter, menu)

    def image(self, rel: str, content: str, style: str, stream: int, index: int, menu: bool = False) -> str:
        clutter = float(self.rng.beta(*self.cfg.clutter_beta)) if style == "instagram" else 0.0
        self.jobs.append((rel, content, style, self.size, (self.seed, stream, index), clutter, menu))
        return rel

    def post(self, *, pid: str, account: str, offset: str, drug: bool, cls: str, query: str,
             image_rel: str, stream: int, index: int, night_p: float, evidence: bool = False,
             dealer_cta: float = 0.0) -> dict:
        cfg, r, t = self.cfg, self.rng, self.text
        content, menu = _image_content(r, cfg, drug, cls)
        if drug:
            p_exp = cfg.pos_text_explicit_nondrug_image if content not in draw.DRUG_CONTENTS else cfg.pos_text_explicit
            kind = "explicit" if r.random() < p_exp else ("vague" if r.random() < 0.7 else "innocent")
        else:
            u = r.random()
            kind = "explicit" if u < cfg.neg_text_explicit else ("innocent" if u < 0.45 else "vague")
        caption = t.caption(kind, cls)
        if drug and r.random() < dealer_cta:
            caption += " " + t.fill(t.pick(CTA))
        return {
            "id": pid,
            "account": account,
            "image": self.image(image_rel, content, "instagram", stream, index, menu),
            "caption": caption,
            "tags": t.tags(query, cfg.pos_drug_tag if drug else cfg.neg_drug_tag, cls if drug else None),
            "comments": t.comments(0.35 if drug else 0.06, evidence),
            "timestamp": _timestamp(r, offset, night_p if drug else 0.08),
            "query": query,
            "drug": int(drug),
            "synthetic_content": content,
        }

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
            bio = t.fill(t.pick(BIO_EVIDENCE if bio_ev else BIO_PLAIN))
            offset = t.pick(OFFSETS)
            classes = r.dirichlet([0.6, 0.6, 0.6])
            length = int(np.clip(round(math.exp(r.normal(math.log(cfg.timeline_median), cfg.timeline_sigma))),
                                 cfg.timeline_min, cfg.timeline_max))
            posts = []
            for k in range(length):
                drug = bool(r.random() < p_drug)
                cls = str(r.choice(list(DICTIONARY), p=classes)) if drug else str(r.choice(list(DICTIONARY)))
                query = t.pick(DICTIONARY[cls]) if drug else t.pick(GENERIC_TAGS)
                self.timeline_index += 1
                post = self.post(
                    pid=f"t-{name}-{k:03d}", account=name, offset=offset, drug=drug, cls=cls, query=query,
                    image_rel=f"images/timelines/{name}/{k:03d}.png", stream=3, index=self.timeline_index,
                    night_p=night, evidence=drug and com_ev and r.random() < 0.3,
                    dealer_cta=0.25 if not d else 0.05,
                )
                if not drug:
                    post["tags"] = [tg for tg in post["tags"] if tg not in ALL_TERMS or r.random() < 0.3] or [query]
                posts.append(post)
            if com_ev and not any(p["drug"] for p in posts):
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
        """Expert 2 agrees with expert 1 on exactly round(agreement * n) accounts.

        Like the paper's second expert (Table 2: 33 dealers against 27), they are more
        lenient: a quarter of the disagreements drop an expert-1 dealer that looks least
        dealer-like, three quarters add a non-dealer that looks most dealer-like (drawn
        with probability rising with the look, so the choice is not a threshold).
        """
        r = self.rng
        n = len(accounts)
        n_dis = n - int(round(self.cfg.expert_agreement * n))
        n_drop = min(int(n_dis * 0.25 + 0.5), int(dealer.sum()))
        n_add = min(n_dis - n_drop, int((~dealer).sum()))
        n_drop = n_dis - n_add

        def draw_from(mask: np.ndarray, sign: float, k: int) -> np.ndarray:
            idx = np.flatnonzero(mask)
            if k == 0 or idx.size == 0:
                return idx[:0]
            w = np.exp(sign * (scores[idx] - scores[idx].mean()) / (scores[idx].std() + 1e-9) * 1.5)
            return r.choice(idx, size=k, replace=False, p=w / w.sum())

        for i in draw_from(dealer, -1.0, n_drop):
            accounts[i]["expert2"] = 0
        for i in draw_from(~dealer, 1.0, n_add):
            accounts[i]["expert2"] = 1

    # ---- labelled posts
    def labelled_posts(self, drug_accounts: list[dict]) -> list[dict]:
        cfg, r, t = self.cfg, self.rng, self.text
        others = _unique_names(r, cfg.n_other_accounts, self.taken)
        offsets = {name: t.pick(OFFSETS) for name in others}
        offsets.update({a["username"]: self.account_offset(a) for a in drug_accounts})
        drug_names = [a["username"] for a in drug_accounts]
        truth = np.zeros(cfg.n_posts, bool)
        truth[r.permutation(cfg.n_posts)[: cfg.n_drug_posts]] = True
        # Annotation noise that keeps the labelled counts exact: as many true positives
        # labelled 0 as true negatives labelled 1.
        n_flip = min(int(round(cfg.label_noise * cfg.n_posts / 2)), cfg.n_drug_posts, cfg.n_posts - cfg.n_drug_posts)
        label = truth.copy()
        label[r.choice(np.flatnonzero(truth), n_flip, replace=False)] = False
        label[r.choice(np.flatnonzero(~truth), n_flip, replace=False)] = True
        posts = []
        for i in range(cfg.n_posts):
            drug = bool(truth[i])
            cls = str(r.choice(list(DICTIONARY), p=cfg.drug_class_mix)) if drug else str(r.choice(list(DICTIONARY)))
            if drug and r.random() < 0.2:
                query = t.pick(GENERAL_TERMS)
            else:
                query = t.pick(DICTIONARY[cls])
            pool = drug_names if (r.random() < (0.4 if drug else 0.04) and drug_names) else others
            account = t.pick(pool)
            post = self.post(
                pid=f"p{i:06d}", account=account, offset=offsets[account], drug=drug, cls=cls, query=query,
                image_rel=f"images/posts/p{i:06d}.png", stream=1, index=i, night_p=0.35 if drug else 0.08,
            )
            post["drug"] = int(label[i])
            posts.append(post)
        return posts

    def account_offset(self, account: dict) -> str:
        tl = self.timelines.get(account["username"]) or []
        return tl[0]["timestamp"][-6:] if tl else OFFSETS[0]

    # ---- web images
    def web(self) -> list[dict]:
        cfg, r, t = self.cfg, self.rng, self.text
        out = []
        i = 0
        for cls, n in zip(("weed", "pills", "syrup", "negative"), cfg.n_web):
            for _ in range(n):
                if cls == "negative":
                    # randomly collected Instagram posts: mostly everyday scenes, some
                    # confusers, the odd drug picture that random sampling catches.
                    u = r.random()
                    if u < 0.02:
                        content = _drug_content(r, str(r.choice(list(DICTIONARY))))
                    elif u < 0.02 + cfg.web_negative_confuser:
                        content = str(r.choice(draw.CONFUSER_CONTENTS))
                    else:
                        content = str(r.choice(draw.GENERIC_CONTENTS))
                    style, query = "instagram", "random"
                else:
                    if r.random() < cfg.web_off_class:  # search engines return noise too
                        content = str(r.choice(["screenshot", "money", "selfie", "landscape", "food"]))
                    else:
                        content = _drug_content(r, cls)
                    style, query = "web", t.pick(DICTIONARY[cls])
                rel = f"images/web/{cls}/w{i:05d}.png"
                out.append({
                    "id": f"w{i:05d}", "image": self.image(rel, content, style, 2, i), "class": cls,
                    "query": query, "synthetic_content": content,
                })
                i += 1
        return out

    def build(self) -> tuple[list[dict], list[dict], list[dict], dict[str, list[dict]]]:
        self.taken: set[str] = set()
        self.timeline_index = 0
        accounts, self.timelines = self.accounts()
        posts = self.labelled_posts(accounts)
        web = self.web()
        return posts, web, accounts, self.timelines


# --------------------------------------------------------------------------- writing


def _render_job(job: tuple, root: str) -> None:
    rel, content, style, size, seed, clutter, menu = job
    arr = draw.render(content, style, size, seed, clutter=clutter, menu=menu)
    draw.save_png(arr, os.path.join(root, rel))


def _render_chunk(jobs: list[tuple], root: str) -> int:
    for job in jobs:
        _render_job(job, root)
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
    return isinstance(meta, dict) and meta.get("generator") == "drugjax.data.synthetic"


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
      preset: ``"small"`` (default), ``"paper"`` or ``"tiny"``.
      seed: everything follows from it; same seed, same bytes.
      image_size: side of the square images in pixels.
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
            "drugjax.data.synthetic); nothing was changed. Choose an empty or new folder")
    world = _plan_world(preset, seed, image_size, knobs)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A fresh folder of our own beside the target: nothing that exists is reused or deleted.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_world(world, tmp, preset, seed, image_size, knobs, workers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ours alone: made above by mkdtemp
        raise
    if out.exists():
        shutil.rmtree(out)  # an earlier world of ours, checked above
    os.replace(tmp, out)
    return out


def _write_world(world: "_World", tmp: Path, preset: str, seed: int, image_size: int,
                 knobs: dict[str, Any], workers: int | None) -> None:
    posts, web, accounts, timelines = world.records
    dirs = {str(Path(job[0]).parent) for job in world.jobs}
    for d in sorted(dirs) + ["timelines"]:
        (tmp / d).mkdir(parents=True, exist_ok=True)
    jobs = world.jobs
    if workers is None:
        workers = 1 if len(jobs) < 5000 else min(4, os.cpu_count() or 1)  # spawn costs ~1 s a worker
    if workers <= 1:
        _render_chunk(jobs, str(tmp))
    else:
        chunks = [jobs[i: i + 256] for i in range(0, len(jobs), 256)]
        ctx = multiprocessing.get_context("spawn")  # no fork: the caller may hold JAX threads
        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            list(pool.map(_render_chunk, chunks, [str(tmp)] * len(chunks)))

    _write_jsonl(tmp / "posts.jsonl", posts)
    _write_jsonl(tmp / "web.jsonl", web)
    _write_jsonl(tmp / "accounts.jsonl", accounts)
    for name, tl in timelines.items():
        _write_jsonl(tmp / "timelines" / f"{name}.jsonl", tl)
    counts = world_counts(posts, web, accounts, timelines)
    meta = {
        "generator": "drugjax.data.synthetic",
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
    parser = argparse.ArgumentParser(prog="python -m drugjax.data.synthetic",
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
        print(f"error: {e}", file=sys.stderr)
        return 2
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
    print(f"  images/          {c['images']} PNG files")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... | head`: the reader left
        sys.stderr.close()
        sys.exit(141)
