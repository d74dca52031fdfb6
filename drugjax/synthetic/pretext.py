"""The pretext data set: everyday objects to pre-train the backbone on (an ImageNet stand-in).

No machine of this project can download ImageNet or torchvision's GoogLeNet weights, yet
the paper's image classifier starts from a backbone that already knows what things look
like. This module draws :data:`CLASSES` — 56 kinds of everyday things (cups, bottles,
fruit, plants, vehicles, animals, screens, text, packaging, textures ...) — with the
synthetic world's own drawing code (:mod:`drugjax.synthetic.draw`: its backgrounds, clutter,
lighting, phone filters, watermarks), at varied scale and position, saved as JPEG at a
random quality. ``python train.py experiment=pretrain`` trains Inception-v1 to tell
them apart (softmax cross-entropy over the classes) and the backbone is exported as the
stand-in weights shipped in ``drugjax/weights/``.

What it is not: ImageNet. Its classes are drawn shapes, as the world's images are, so the
stand-in's features are fitted to this toolkit's synthetic world and say nothing about
real photographs; for real data use torchvision's weights (docs/training.md).

Two rules keep the pretraining honest:

* **no drug class**: no cannabis leaf or bud, no joint, no pill, no purple "lean" cup or
  bottle is drawn (:data:`CLASSES` is the whole list; the world's confusers are not in
  it either: no vitamins, no purple drinks, no green food);
* **no image of an evaluation world**: every image comes from its own seed
  ``(PRETEXT_STREAM, seed, split, class, index)`` -- a stream the world generator never
  uses -- so no pretext image is an image of any synthetic world.
"""

from __future__ import annotations

import io
import json
import logging
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from drugjax.synthetic import draw
from drugjax.synthetic.draw import cup, darker, Canvas, load_font, hsv, jitter, rotate  # noqa: F401 - shared drawing kit

log = logging.getLogger(__name__)

#: Bumped whenever the drawings change (cached pretext sets of another version are rebuilt).
PRETEXT_VERSION = 1
#: The first seed word of every pretext image; the world generator's streams are small
#: integers (drugjax.synthetic.world), never this.
PRETEXT_STREAM = 7_919_001
SPLITS = ("train", "val")


# --------------------------------------------------------------------------- small shapes
def _disc(d, x, y, r, fill):
    d.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _poly(d, rng, cx, cy, s, pts, fill, ang=None):
    """A polygon given in units of ``s`` around (cx, cy), rotated by ``ang`` (random small)."""
    ang = rng.normal(0, 0.15) if ang is None else ang
    d.polygon(rotate(np.asarray(pts, np.float64) * s, ang, cx, cy), fill=fill)


def _random_colour(rng, sat=(0.4, 0.9), val=(0.5, 1.0)):
    return hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val))


# --------------------------------------------------------------------------- drinks and tableware
def _mug(d, rng, cx, cy, s):
    col = _random_colour(rng, (0, 0.8), (0.4, 1.0))
    d.rounded_rectangle([cx - s * 0.3, cy - s * 0.35, cx + s * 0.3, cy + s * 0.4], radius=s * 0.06, fill=col)
    d.arc([cx + s * 0.18, cy - s * 0.2, cx + s * 0.52, cy + s * 0.2], -90, 90, fill=col, width=max(2, int(s * 0.08)))
    d.ellipse([cx - s * 0.3, cy - s * 0.42, cx + s * 0.3, cy - s * 0.28], fill=hsv(0.08, 0.7, rng.uniform(0.2, 0.4)))


def _wine_glass(d, rng, cx, cy, s):
    glass = (225, 230, 235)
    d.ellipse([cx - s * 0.28, cy - s * 0.55, cx + s * 0.28, cy - s * 0.05], fill=glass)
    d.chord([cx - s * 0.26, cy - s * 0.45, cx + s * 0.26, cy - s * 0.07], 0, 180, fill=hsv(rng.uniform(0.95, 1.0), 0.8, rng.uniform(0.35, 0.6)) if rng.random() < 0.6 else (240, 220, 140))
    d.rectangle([cx - s * 0.025, cy - s * 0.07, cx + s * 0.025, cy + s * 0.4], fill=glass)
    d.ellipse([cx - s * 0.2, cy + s * 0.36, cx + s * 0.2, cy + s * 0.46], fill=glass)


def _water_bottle(d, rng, cx, cy, s):
    body = jitter(rng, (190, 220, 240), 15)
    d.rounded_rectangle([cx - s * 0.17, cy - s * 0.4, cx + s * 0.17, cy + s * 0.55], radius=s * 0.08, fill=body)
    d.rectangle([cx - s * 0.08, cy - s * 0.55, cx + s * 0.08, cy - s * 0.4], fill=body)
    d.rectangle([cx - s * 0.09, cy - s * 0.64, cx + s * 0.09, cy - s * 0.55], fill=_random_colour(rng))
    d.rectangle([cx - s * 0.17, cy - s * 0.05, cx + s * 0.17, cy + s * 0.2], fill=_random_colour(rng, (0.3, 0.9), (0.6, 1)))


def _soda_can(d, rng, cx, cy, s):
    col = _random_colour(rng, (0.6, 1.0), (0.5, 1.0))
    d.rectangle([cx - s * 0.22, cy - s * 0.38, cx + s * 0.22, cy + s * 0.38], fill=col)
    d.ellipse([cx - s * 0.22, cy - s * 0.45, cx + s * 0.22, cy - s * 0.31], fill=(200, 200, 205))
    d.ellipse([cx - s * 0.22, cy + s * 0.31, cx + s * 0.22, cy + s * 0.45], fill=darker(col, 0.8))
    d.rectangle([cx - s * 0.22, cy - s * 0.08, cx + s * 0.22, cy + s * 0.04], fill=(245, 245, 245))


def _wine_bottle(d, rng, cx, cy, s):
    glass = jitter(rng, (30, 70, 40) if rng.random() < 0.6 else (70, 30, 30), 10)
    d.rounded_rectangle([cx - s * 0.16, cy - s * 0.15, cx + s * 0.16, cy + s * 0.6], radius=s * 0.05, fill=glass)
    d.polygon([(cx - s * 0.16, cy - s * 0.15), (cx - s * 0.05, cy - s * 0.35), (cx + s * 0.05, cy - s * 0.35), (cx + s * 0.16, cy - s * 0.15)], fill=glass)
    d.rectangle([cx - s * 0.05, cy - s * 0.65, cx + s * 0.05, cy - s * 0.35], fill=glass)
    d.rectangle([cx - s * 0.16, cy + s * 0.1, cx + s * 0.16, cy + s * 0.35], fill=jitter(rng, (235, 225, 200), 10))


def _coffee_cup(d, rng, cx, cy, s):
    # a paper takeaway cup: single wall, sleeve, lid, brown coffee (the world's cups are styrofoam)
    cup(d, rng, cx, cy, s, hsv(0.07, 0.7, rng.uniform(0.2, 0.45)), double=False, cup_col=jitter(rng, (240, 240, 235), 8))
    d.rectangle([cx - s * 0.38, cy - s * 0.05, cx + s * 0.36, cy + s * 0.2], fill=hsv(0.08, 0.5, 0.6))
    d.rounded_rectangle([cx - s * 0.48, cy - s * 0.6, cx + s * 0.48, cy - s * 0.48], radius=s * 0.04, fill=_random_colour(rng, (0, 0.3), (0.1, 0.95)))


def _plate(d, rng, cx, cy, s):
    d.ellipse([cx - s * 0.6, cy - s * 0.4, cx + s * 0.6, cy + s * 0.4], fill=jitter(rng, (245, 245, 240), 8))
    d.ellipse([cx - s * 0.42, cy - s * 0.27, cx + s * 0.42, cy + s * 0.27], outline=(210, 210, 205), width=2)
    if rng.random() < 0.7:  # cutlery
        d.rectangle([cx + s * 0.68, cy - s * 0.4, cx + s * 0.72, cy + s * 0.4], fill=(190, 190, 195))
        d.rectangle([cx - s * 0.72, cy - s * 0.4, cx - s * 0.68, cy + s * 0.4], fill=(190, 190, 195))


# --------------------------------------------------------------------------- food
def _apple(d, rng, cx, cy, s):
    col = hsv(rng.choice([0.0, 0.02, 0.25]), rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.95))
    d.ellipse([cx - s * 0.35, cy - s * 0.3, cx + s * 0.02, cy + s * 0.35], fill=col)
    d.ellipse([cx - s * 0.02, cy - s * 0.3, cx + s * 0.35, cy + s * 0.35], fill=col)
    d.line([(cx, cy - s * 0.28), (cx + s * 0.05, cy - s * 0.45)], fill=(90, 60, 30), width=max(1, int(s * 0.04)))


def _banana(d, rng, cx, cy, s):
    col = hsv(rng.uniform(0.13, 0.17), 0.8, rng.uniform(0.8, 1.0))
    for k in range(int(rng.integers(1, 4))):
        off = k * s * 0.12
        d.arc([cx - s * 0.5, cy - s * 0.5 + off, cx + s * 0.5, cy + s * 0.3 + off], 20, 160, fill=col, width=max(2, int(s * 0.14)))


def _orange(d, rng, cx, cy, s):
    for _ in range(int(rng.integers(1, 4))):
        x, y = cx + rng.normal(0, s * 0.2), cy + rng.normal(0, s * 0.15)
        _disc(d, x, y, s * 0.25, hsv(rng.uniform(0.06, 0.1), 0.85, rng.uniform(0.8, 1.0)))
        _disc(d, x + s * 0.05, y - s * 0.2, s * 0.03, (80, 110, 40))


def _grapes(d, rng, cx, cy, s):
    col = hsv(rng.choice([0.25, 0.3]), 0.6, rng.uniform(0.5, 0.8))  # green grapes only: purple stays out
    for row in range(5):
        for k in range(5 - row):
            _disc(d, cx + (k - (4 - row) / 2) * s * 0.13, cy - s * 0.25 + row * s * 0.12, s * 0.07, jitter(rng, col, 10))
    d.line([(cx, cy - s * 0.3), (cx + s * 0.05, cy - s * 0.45)], fill=(100, 70, 30), width=max(1, int(s * 0.03)))


def _watermelon(d, rng, cx, cy, s):
    d.pieslice([cx - s * 0.55, cy - s * 0.55, cx + s * 0.55, cy + s * 0.55], 0, 180, fill=(40, 140, 50))
    d.pieslice([cx - s * 0.5, cy - s * 0.5, cx + s * 0.5, cy + s * 0.5], 0, 180, fill=(235, 70, 80))
    for _ in range(8):
        a = rng.uniform(0.2, math.pi - 0.2)
        r = rng.uniform(0.15, 0.4) * s
        _disc(d, cx + r * math.cos(a), cy + r * math.sin(a), s * 0.02, (20, 20, 20))


def _donut(d, rng, cx, cy, s):
    _disc(d, cx, cy, s * 0.42, hsv(0.08, 0.6, 0.8))
    _disc(d, cx, cy, s * 0.36, _random_colour(rng, (0.3, 0.8), (0.6, 1.0)))
    for _ in range(15):
        a, r = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.33) * s
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        d.line([(x, y), (x + s * 0.04, y + s * 0.02)], fill=_random_colour(rng), width=max(1, int(s * 0.02)))
    _disc(d, cx, cy, s * 0.13, (245, 245, 240))  # the hole, on a plate


def _cake(d, rng, cx, cy, s):
    col = _random_colour(rng, (0.1, 0.6), (0.7, 1.0))
    d.rectangle([cx - s * 0.45, cy - s * 0.1, cx + s * 0.45, cy + s * 0.4], fill=col)
    d.ellipse([cx - s * 0.45, cy - s * 0.22, cx + s * 0.45, cy + s * 0.02], fill=jitter(rng, (250, 245, 240), 6))
    for k in range(int(rng.integers(0, 6))):  # candles
        x = cx - s * 0.3 + k * s * 0.12
        d.rectangle([x, cy - s * 0.4, x + s * 0.03, cy - s * 0.12], fill=_random_colour(rng))
        _disc(d, x + s * 0.015, cy - s * 0.45, s * 0.03, (255, 200, 60))


def _ice_cream(d, rng, cx, cy, s):
    d.polygon([(cx - s * 0.18, cy - s * 0.05), (cx + s * 0.18, cy - s * 0.05), (cx, cy + s * 0.55)], fill=(215, 170, 100))
    for k in range(int(rng.integers(1, 4))):
        _disc(d, cx, cy - s * 0.12 - k * s * 0.2, s * 0.2, _random_colour(rng, (0.2, 0.7), (0.7, 1.0)))


def _fried_egg(d, rng, cx, cy, s):
    pts = [(math.cos(a) * s * rng.uniform(0.35, 0.5), math.sin(a) * s * rng.uniform(0.3, 0.45)) for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)]
    d.polygon([(cx + x, cy + y) for x, y in pts], fill=(250, 250, 245))
    _disc(d, cx + rng.normal(0, s * 0.05), cy + rng.normal(0, s * 0.05), s * 0.14, (250, 190, 30))


def _bread(d, rng, cx, cy, s):
    crust = hsv(0.08, 0.7, rng.uniform(0.5, 0.75))
    d.rounded_rectangle([cx - s * 0.5, cy - s * 0.25, cx + s * 0.5, cy + s * 0.3], radius=s * 0.2, fill=crust)
    for k in range(4):
        x = cx - s * 0.3 + k * s * 0.2
        d.line([(x, cy - s * 0.2), (x + s * 0.1, cy - s * 0.05)], fill=darker(crust, 0.7), width=max(1, int(s * 0.03)))


def _candy(d, rng, cx, cy, s):
    # wrapped sweets: a disc with two twisted ends (a bow-tie silhouette, not a pill)
    for _ in range(int(rng.integers(2, 7))):
        x, y, r = cx + rng.normal(0, s * 0.25), cy + rng.normal(0, s * 0.2), s * 0.09
        col = _random_colour(rng, (0.6, 1.0), (0.7, 1.0))
        d.polygon([(x - r, y), (x - 2.2 * r, y - r), (x - 2.2 * r, y + r)], fill=col)
        d.polygon([(x + r, y), (x + 2.2 * r, y - r), (x + 2.2 * r, y + r)], fill=col)
        _disc(d, x, y, r, jitter(rng, col, 25))


# --------------------------------------------------------------------------- plants and nature
def _flower(d, rng, cx, cy, s):
    d.line([(cx, cy), (cx, cy + s * 0.6)], fill=(60, 130, 50), width=max(1, int(s * 0.04)))
    petal = _random_colour(rng, (0.4, 0.9), (0.7, 1.0))
    n = int(rng.integers(5, 10))
    for k in range(n):
        a = 2 * math.pi * k / n
        _disc(d, cx + math.cos(a) * s * 0.18, cy + math.sin(a) * s * 0.18, s * 0.12, petal)
    _disc(d, cx, cy, s * 0.09, hsv(rng.uniform(0.1, 0.15), 0.9, rng.uniform(0.3, 0.9)))


def _sunflower(d, rng, cx, cy, s):
    for k in range(16):
        a = 2 * math.pi * k / 16
        _poly(d, rng, cx + math.cos(a) * s * 0.3, cy + math.sin(a) * s * 0.3, s,
              [(-0.05, 0), (0.05, 0), (0, 0.15)], (250, 200, 30), ang=a - math.pi / 2)
    _disc(d, cx, cy, s * 0.25, (90, 60, 30))


def _tree(d, rng, cx, cy, s):
    d.rectangle([cx - s * 0.06, cy, cx + s * 0.06, cy + s * 0.6], fill=(100, 70, 40))
    green = hsv(rng.uniform(0.22, 0.38), 0.6, rng.uniform(0.3, 0.6))
    if rng.random() < 0.5:  # a fir
        for k in range(3):
            y = cy - s * 0.5 + k * s * 0.22
            d.polygon([(cx, y), (cx - s * (0.2 + 0.1 * k), y + s * 0.35), (cx + s * (0.2 + 0.1 * k), y + s * 0.35)], fill=green)
    else:  # a round crown
        for _ in range(6):
            _disc(d, cx + rng.normal(0, s * 0.15), cy - s * 0.2 + rng.normal(0, s * 0.12), s * 0.22, jitter(rng, green, 12))


def _cactus(d, rng, cx, cy, s):
    green = hsv(rng.uniform(0.25, 0.35), 0.6, rng.uniform(0.4, 0.6))
    d.rounded_rectangle([cx - s * 0.1, cy - s * 0.5, cx + s * 0.1, cy + s * 0.4], radius=s * 0.1, fill=green)
    d.rounded_rectangle([cx - s * 0.35, cy - s * 0.2, cx - s * 0.2, cy + s * 0.05], radius=s * 0.07, fill=green)
    d.rectangle([cx - s * 0.3, cy, cx, cy + s * 0.08], fill=green)
    d.polygon([(cx - s * 0.3, cy + s * 0.4), (cx + s * 0.3, cy + s * 0.4), (cx + s * 0.22, cy + s * 0.65), (cx - s * 0.22, cy + s * 0.65)], fill=(190, 100, 60))


def _palm_frond(d, rng, cx, cy, s):
    # a palm or fern frond: many narrow parallel leaflets along one stem (never a hand of 5-9)
    green = hsv(rng.uniform(0.2, 0.35), 0.65, rng.uniform(0.35, 0.6))
    ang = rng.uniform(-0.5, 0.5)
    d.line(rotate(np.array([[0, -0.6], [0, 0.6]]) * s, ang, cx, cy), fill=darker(green, 0.7), width=max(1, int(s * 0.03)))
    for k in np.linspace(-0.5, 0.5, 14):
        for side in (-1, 1):
            _poly(d, rng, cx, cy, s, [(0, k), (side * 0.35, k - 0.12), (side * 0.35, k - 0.08), (0, k + 0.04)], green, ang=ang)


def _grass(d, rng, cx, cy, s):
    W = d.im.size[0]
    d.rectangle([0, cy, W, W], fill=hsv(rng.uniform(0.22, 0.32), 0.6, rng.uniform(0.3, 0.6)))
    for _ in range(60):
        x = rng.uniform(0, W)
        d.line([(x, cy + rng.uniform(0, W - cy)), (x + rng.normal(0, s * 0.05), cy - rng.uniform(0, s * 0.2))],
               fill=hsv(rng.uniform(0.22, 0.32), 0.7, rng.uniform(0.3, 0.7)), width=1)


def _sky(d, rng, cx, cy, s):
    W = d.im.size[0]
    d.rectangle([0, 0, W, W], fill=hsv(rng.uniform(0.55, 0.62), rng.uniform(0.3, 0.7), rng.uniform(0.7, 1.0)))
    for _ in range(int(rng.integers(2, 6))):  # clouds
        x, y = rng.uniform(0, W), rng.uniform(0, W * 0.8)
        for _ in range(5):
            _disc(d, x + rng.normal(0, W * 0.05), y + rng.normal(0, W * 0.02), W * rng.uniform(0.04, 0.08), (250, 250, 252))


def _sunset(d, rng, cx, cy, s):
    W = d.im.size[0]
    for k in range(8):
        d.rectangle([0, k * W / 8, W, (k + 1) * W / 8], fill=hsv(0.05 + 0.08 * k / 8, 0.8, 1.0 - 0.08 * k))
    _disc(d, cx, W * rng.uniform(0.5, 0.7), W * 0.08, (255, 230, 120))
    d.rectangle([0, W * 0.7, W, W], fill=hsv(0.6, 0.5, 0.25))


def _mountains(d, rng, cx, cy, s):
    W = d.im.size[0]
    d.rectangle([0, 0, W, W], fill=hsv(0.58, 0.4, 0.95))
    for layer in range(3):
        pts = [(0, W)] + [(x, W * (0.3 + 0.15 * layer) + rng.normal(0, W * 0.08)) for x in np.linspace(0, W, 6)] + [(W, W)]
        d.polygon(pts, fill=hsv(0.6 - 0.1 * layer, 0.3, 0.7 - 0.15 * layer))


# --------------------------------------------------------------------------- animals and people
def _cat_face(d, rng, cx, cy, s):
    fur = hsv(rng.uniform(0.05, 0.1), rng.uniform(0, 0.7), rng.uniform(0.2, 0.95))
    d.polygon([(cx - s * 0.35, cy - s * 0.1), (cx - s * 0.3, cy - s * 0.5), (cx - s * 0.1, cy - s * 0.25)], fill=fur)
    d.polygon([(cx + s * 0.35, cy - s * 0.1), (cx + s * 0.3, cy - s * 0.5), (cx + s * 0.1, cy - s * 0.25)], fill=fur)
    _disc(d, cx, cy, s * 0.35, fur)
    for ex in (-0.13, 0.13):
        d.ellipse([cx + ex * s - s * 0.06, cy - s * 0.1, cx + ex * s + s * 0.06, cy + s * 0.02], fill=(120, 180, 60))
    d.polygon([(cx - s * 0.04, cy + s * 0.08), (cx + s * 0.04, cy + s * 0.08), (cx, cy + s * 0.13)], fill=(230, 130, 140))


def _fish(d, rng, cx, cy, s):
    col = _random_colour(rng)
    d.ellipse([cx - s * 0.4, cy - s * 0.2, cx + s * 0.25, cy + s * 0.2], fill=col)
    d.polygon([(cx + s * 0.2, cy), (cx + s * 0.5, cy - s * 0.22), (cx + s * 0.5, cy + s * 0.22)], fill=col)
    _disc(d, cx - s * 0.25, cy - s * 0.05, s * 0.04, (10, 10, 10))


def _bird(d, rng, cx, cy, s):
    col = _random_colour(rng, (0.3, 0.9), (0.3, 0.9))
    d.ellipse([cx - s * 0.3, cy - s * 0.15, cx + s * 0.2, cy + s * 0.2], fill=col)
    _disc(d, cx + s * 0.22, cy - s * 0.15, s * 0.12, col)
    d.polygon([(cx + s * 0.32, cy - s * 0.17), (cx + s * 0.45, cy - s * 0.12), (cx + s * 0.32, cy - s * 0.09)], fill=(240, 170, 30))
    d.polygon([(cx - s * 0.1, cy), (cx - s * 0.35, cy - s * 0.35), (cx + s * 0.05, cy - s * 0.05)], fill=darker(col, 0.75))
    d.polygon([(cx - s * 0.28, cy + s * 0.05), (cx - s * 0.5, cy - s * 0.05), (cx - s * 0.5, cy + s * 0.15)], fill=col)


def _butterfly(d, rng, cx, cy, s):
    col, col2 = _random_colour(rng), _random_colour(rng)
    for side in (-1, 1):
        d.ellipse([cx + side * s * 0.02, cy - s * 0.35, cx + side * s * 0.4, cy], fill=col)
        d.ellipse([cx + side * s * 0.02, cy - s * 0.02, cx + side * s * 0.3, cy + s * 0.28], fill=col2)
    d.rectangle([cx - s * 0.03, cy - s * 0.3, cx + s * 0.03, cy + s * 0.25], fill=(30, 30, 30))


def _hand(d, rng, cx, cy, s):
    skin = hsv(rng.uniform(0.04, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
    d.rounded_rectangle([cx - s * 0.22, cy - s * 0.1, cx + s * 0.22, cy + s * 0.4], radius=s * 0.08, fill=skin)
    for k in range(4):
        x = cx - s * 0.2 + k * s * 0.13
        d.rounded_rectangle([x, cy - s * 0.45 + abs(k - 1.5) * s * 0.06, x + s * 0.1, cy], radius=s * 0.05, fill=skin)
    d.rounded_rectangle([cx + s * 0.2, cy + s * 0.0, cx + s * 0.45, cy + s * 0.12], radius=s * 0.05, fill=skin)


# --------------------------------------------------------------------------- things and screens
def _laptop(d, rng, cx, cy, s):
    body = jitter(rng, (180, 180, 185), 30)
    d.rectangle([cx - s * 0.45, cy - s * 0.4, cx + s * 0.45, cy + s * 0.15], fill=body)
    d.rectangle([cx - s * 0.4, cy - s * 0.35, cx + s * 0.4, cy + s * 0.1], fill=_random_colour(rng, (0.2, 0.8), (0.3, 0.9)))
    d.polygon([(cx - s * 0.45, cy + s * 0.15), (cx + s * 0.45, cy + s * 0.15), (cx + s * 0.55, cy + s * 0.3), (cx - s * 0.55, cy + s * 0.3)], fill=darker(body, 0.9))


def _phone(d, rng, cx, cy, s):
    d.rounded_rectangle([cx - s * 0.22, cy - s * 0.45, cx + s * 0.22, cy + s * 0.45], radius=s * 0.06, fill=(25, 25, 28))
    d.rectangle([cx - s * 0.19, cy - s * 0.38, cx + s * 0.19, cy + s * 0.38], fill=_random_colour(rng, (0.2, 0.8), (0.4, 1.0)))
    for r in range(4):
        for c in range(3):  # app icons
            x, y = cx - s * 0.15 + c * s * 0.11, cy - s * 0.32 + r * s * 0.11
            d.rounded_rectangle([x, y, x + s * 0.07, y + s * 0.07], radius=s * 0.015, fill=_random_colour(rng))


def _television(d, rng, cx, cy, s):
    d.rectangle([cx - s * 0.6, cy - s * 0.38, cx + s * 0.6, cy + s * 0.32], fill=(20, 20, 22))
    scene = [_sky, _sunset, _mountains][int(rng.integers(0, 3))]
    sub = Image.new("RGB", (int(s * 1.1) + 1, int(s * 0.6) + 1))
    scene(Canvas(sub), rng, sub.size[0] / 2, sub.size[1] / 2, s * 0.3)
    d.im.paste(sub.im, (int(cx - s * 0.55), int(cy - s * 0.33), int(cx - s * 0.55) + sub.size[0], int(cy - s * 0.33) + sub.size[1]))
    d.rectangle([cx - s * 0.1, cy + s * 0.32, cx + s * 0.1, cy + s * 0.45], fill=(40, 40, 40))


def _book(d, rng, cx, cy, s):
    for k in range(int(rng.integers(1, 5))):
        col = _random_colour(rng, (0.3, 0.9), (0.3, 0.9))
        y = cy + s * 0.3 - k * s * 0.16
        d.rectangle([cx - s * 0.45 + rng.normal(0, s * 0.04), y, cx + s * 0.45, y + s * 0.14], fill=col)
        d.rectangle([cx - s * 0.42, y + s * 0.03, cx + s * 0.42, y + s * 0.05], fill=(245, 240, 225))


def _clock(d, rng, cx, cy, s):
    _disc(d, cx, cy, s * 0.42, _random_colour(rng, (0, 0.8), (0.2, 0.9)))
    _disc(d, cx, cy, s * 0.36, (250, 250, 245))
    for k in range(12):
        a = 2 * math.pi * k / 12
        _disc(d, cx + math.cos(a) * s * 0.3, cy + math.sin(a) * s * 0.3, s * 0.02, (30, 30, 30))
    for length, a in ((0.22, rng.uniform(0, 2 * math.pi)), (0.3, rng.uniform(0, 2 * math.pi))):
        d.line([(cx, cy), (cx + math.cos(a) * s * length, cy + math.sin(a) * s * length)], fill=(20, 20, 20), width=max(1, int(s * 0.03)))


def _lamp(d, rng, cx, cy, s):
    shade = _random_colour(rng, (0, 0.6), (0.6, 1.0))
    d.polygon([(cx - s * 0.15, cy - s * 0.45), (cx + s * 0.15, cy - s * 0.45), (cx + s * 0.3, cy - s * 0.1), (cx - s * 0.3, cy - s * 0.1)], fill=shade)
    d.rectangle([cx - s * 0.03, cy - s * 0.1, cx + s * 0.03, cy + s * 0.45], fill=(90, 90, 95))
    d.ellipse([cx - s * 0.2, cy + s * 0.4, cx + s * 0.2, cy + s * 0.5], fill=(70, 70, 75))


def _chair(d, rng, cx, cy, s):
    wood = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8))
    w = max(2, int(s * 0.05))
    d.rectangle([cx - s * 0.3, cy, cx + s * 0.3, cy + s * 0.08], fill=wood)
    for x in (cx - s * 0.28, cx + s * 0.25):
        d.rectangle([x, cy, x + s * 0.05, cy + s * 0.5], fill=wood)
    d.rectangle([cx - s * 0.3, cy - s * 0.5, cx - s * 0.25, cy], fill=wood)
    d.rectangle([cx - s * 0.3, cy - s * 0.5, cx + s * 0.05, cy - s * 0.42], fill=wood)
    d.line([(cx - s * 0.3, cy - s * 0.25), (cx, cy - s * 0.25)], fill=wood, width=w)


def _shoe(d, rng, cx, cy, s):
    col = _random_colour(rng, (0, 0.9), (0.2, 1.0))
    d.polygon([(cx - s * 0.45, cy + s * 0.15), (cx - s * 0.4, cy - s * 0.2), (cx - s * 0.1, cy - s * 0.2), (cx + s * 0.1, cy), (cx + s * 0.45, cy + s * 0.05), (cx + s * 0.45, cy + s * 0.15)], fill=col)
    d.rectangle([cx - s * 0.46, cy + s * 0.15, cx + s * 0.46, cy + s * 0.22], fill=(245, 245, 245))
    for k in range(3):
        d.line([(cx - s * 0.3 + k * s * 0.08, cy - s * 0.15), (cx - s * 0.2 + k * s * 0.08, cy - s * 0.05)], fill=(250, 250, 250), width=1)


def _t_shirt(d, rng, cx, cy, s):
    col = _random_colour(rng, (0, 0.9), (0.2, 1.0))
    _poly(d, rng, cx, cy, s, [(-0.2, -0.4), (-0.5, -0.25), (-0.4, -0.05), (-0.25, -0.12), (-0.25, 0.45), (0.25, 0.45), (0.25, -0.12), (0.4, -0.05), (0.5, -0.25), (0.2, -0.4), (0.1, -0.33), (-0.1, -0.33)], col)


def _hat(d, rng, cx, cy, s):
    col = _random_colour(rng, (0, 0.9), (0.2, 0.9))
    d.ellipse([cx - s * 0.5, cy, cx + s * 0.5, cy + s * 0.2], fill=col)
    d.chord([cx - s * 0.3, cy - s * 0.4, cx + s * 0.3, cy + s * 0.25], 180, 360, fill=jitter(rng, col, 20))
    d.rectangle([cx - s * 0.3, cy - s * 0.02, cx + s * 0.3, cy + s * 0.05], fill=_random_colour(rng))


def _glasses(d, rng, cx, cy, s):
    frame = _random_colour(rng, (0, 0.8), (0.05, 0.6))
    w = max(2, int(s * 0.04))
    for side in (-1, 1):
        d.ellipse([cx + side * s * 0.05, cy - s * 0.12, cx + side * s * 0.4, cy + s * 0.15], outline=frame, width=w)
    d.arc([cx - s * 0.07, cy - s * 0.1, cx + s * 0.07, cy + s * 0.04], 200, 340, fill=frame, width=w)


def _key(d, rng, cx, cy, s):
    metal = jitter(rng, (200, 180, 90) if rng.random() < 0.5 else (190, 190, 195), 15)
    d.ellipse([cx - s * 0.45, cy - s * 0.15, cx - s * 0.15, cy + s * 0.15], fill=metal)
    _disc(d, cx - s * 0.3, cy, s * 0.05, (250, 250, 250))
    d.rectangle([cx - s * 0.15, cy - s * 0.04, cx + s * 0.4, cy + s * 0.04], fill=metal)
    for k in range(3):
        d.rectangle([cx + s * (0.1 + 0.1 * k), cy + s * 0.04, cx + s * (0.15 + 0.1 * k), cy + s * 0.12], fill=metal)


def _scissors(d, rng, cx, cy, s):
    handle = _random_colour(rng)
    w = max(2, int(s * 0.05))
    for side in (-1, 1):
        d.ellipse([cx - s * 0.45, cy + side * s * 0.05 - s * 0.1, cx - s * 0.25, cy + side * s * 0.2], outline=handle, width=w)
        d.line([(cx - s * 0.25, cy + side * s * 0.1), (cx + s * 0.45, cy - side * s * 0.08)], fill=(180, 180, 190), width=w)


def _pencil(d, rng, cx, cy, s):
    ang = rng.uniform(-1, 1)
    body = _random_colour(rng, (0.5, 1.0), (0.6, 1.0))
    _poly(d, rng, cx, cy, s, [(-0.5, -0.05), (0.3, -0.05), (0.3, 0.05), (-0.5, 0.05)], body, ang=ang)
    _poly(d, rng, cx, cy, s, [(0.3, -0.05), (0.45, 0), (0.3, 0.05)], (230, 200, 150), ang=ang)
    _poly(d, rng, cx, cy, s, [(-0.58, -0.05), (-0.5, -0.05), (-0.5, 0.05), (-0.58, 0.05)], (240, 150, 160), ang=ang)


def _umbrella(d, rng, cx, cy, s):
    col = _random_colour(rng)
    d.pieslice([cx - s * 0.5, cy - s * 0.45, cx + s * 0.5, cy + s * 0.25], 180, 360, fill=col)
    d.line([(cx, cy - s * 0.1), (cx, cy + s * 0.45)], fill=(50, 50, 50), width=max(1, int(s * 0.04)))
    d.arc([cx - s * 0.12, cy + s * 0.35, cx, cy + s * 0.5], 0, 180, fill=(50, 50, 50), width=max(1, int(s * 0.04)))


def _balloons(d, rng, cx, cy, s):
    for _ in range(int(rng.integers(1, 6))):
        x, y = cx + rng.normal(0, s * 0.25), cy - s * 0.2 + rng.normal(0, s * 0.12)
        d.ellipse([x - s * 0.13, y - s * 0.17, x + s * 0.13, y + s * 0.17], fill=_random_colour(rng, (0.6, 1.0), (0.7, 1.0)))
        d.line([(x, y + s * 0.17), (cx, cy + s * 0.5)], fill=(90, 90, 90), width=1)


def _ball(d, rng, cx, cy, s):
    kind = int(rng.integers(0, 3))
    if kind == 0:  # football
        _disc(d, cx, cy, s * 0.4, (245, 245, 245))
        for a in np.linspace(0, 2 * math.pi, 5, endpoint=False):
            _disc(d, cx + math.cos(a) * s * 0.22, cy + math.sin(a) * s * 0.22, s * 0.08, (25, 25, 25))
        _disc(d, cx, cy, s * 0.09, (25, 25, 25))
    elif kind == 1:  # basketball
        _disc(d, cx, cy, s * 0.4, (225, 110, 30))
        d.line([(cx - s * 0.4, cy), (cx + s * 0.4, cy)], fill=(30, 20, 10), width=max(1, int(s * 0.03)))
        d.line([(cx, cy - s * 0.4), (cx, cy + s * 0.4)], fill=(30, 20, 10), width=max(1, int(s * 0.03)))
    else:  # tennis ball
        _disc(d, cx, cy, s * 0.3, (210, 230, 60))
        d.arc([cx - s * 0.5, cy - s * 0.3, cx - s * 0.05, cy + s * 0.3], -60, 60, fill=(250, 250, 250), width=max(1, int(s * 0.03)))


def _dice(d, rng, cx, cy, s):
    for _ in range(int(rng.integers(1, 3))):
        x, y = cx + rng.normal(0, s * 0.2), cy + rng.normal(0, s * 0.1)
        d.rounded_rectangle([x - s * 0.2, y - s * 0.2, x + s * 0.2, y + s * 0.2], radius=s * 0.05, fill=jitter(rng, (245, 245, 245), 6))
        for px, py in [(-1, -1), (1, 1), (0, 0), (1, -1), (-1, 1)][: int(rng.integers(1, 6))]:
            _disc(d, x + px * s * 0.1, y + py * s * 0.1, s * 0.03, (20, 20, 20))


def _playing_cards(d, rng, cx, cy, s):
    for k in range(int(rng.integers(1, 5))):
        x = cx - s * 0.3 + k * s * 0.12
        d.rounded_rectangle([x, cy - s * 0.35, x + s * 0.35, cy + s * 0.15], radius=s * 0.03, fill=(250, 250, 250), outline=(150, 150, 150))
        col = (200, 20, 20) if rng.random() < 0.5 else (20, 20, 20)
        d.polygon([(x + s * 0.17, cy - s * 0.2), (x + s * 0.25, cy - s * 0.1), (x + s * 0.17, cy), (x + s * 0.09, cy - s * 0.1)], fill=col)


def _gift_box(d, rng, cx, cy, s):
    col, ribbon = _random_colour(rng), _random_colour(rng)
    d.rectangle([cx - s * 0.35, cy - s * 0.2, cx + s * 0.35, cy + s * 0.4], fill=col)
    d.rectangle([cx - s * 0.4, cy - s * 0.32, cx + s * 0.4, cy - s * 0.2], fill=darker(col, 0.85))
    d.rectangle([cx - s * 0.05, cy - s * 0.32, cx + s * 0.05, cy + s * 0.4], fill=ribbon)
    d.ellipse([cx - s * 0.2, cy - s * 0.45, cx, cy - s * 0.32], fill=ribbon)
    d.ellipse([cx, cy - s * 0.45, cx + s * 0.2, cy - s * 0.32], fill=ribbon)


def _cardboard_box(d, rng, cx, cy, s):
    brown = hsv(0.08, rng.uniform(0.4, 0.6), rng.uniform(0.55, 0.75))
    d.polygon([(cx - s * 0.4, cy - s * 0.15), (cx + s * 0.2, cy - s * 0.15), (cx + s * 0.2, cy + s * 0.4), (cx - s * 0.4, cy + s * 0.4)], fill=brown)
    d.polygon([(cx + s * 0.2, cy - s * 0.15), (cx + s * 0.45, cy - s * 0.35), (cx + s * 0.45, cy + s * 0.2), (cx + s * 0.2, cy + s * 0.4)], fill=darker(brown, 0.8))
    d.polygon([(cx - s * 0.4, cy - s * 0.15), (cx - s * 0.15, cy - s * 0.35), (cx + s * 0.45, cy - s * 0.35), (cx + s * 0.2, cy - s * 0.15)], fill=darker(brown, 1.1))
    d.rectangle([cx - s * 0.15, cy - s * 0.15, cx - s * 0.05, cy + s * 0.4], fill=jitter(rng, (200, 190, 150), 10))


def _barcode_label(d, rng, cx, cy, s):
    d.rectangle([cx - s * 0.45, cy - s * 0.3, cx + s * 0.45, cy + s * 0.3], fill=(250, 250, 250))
    x = cx - s * 0.38
    while x < cx + s * 0.38:
        w = s * rng.choice([0.01, 0.02, 0.035])
        d.rectangle([x, cy - s * 0.2, x + w, cy + s * 0.12], fill=(15, 15, 15))
        x += w + s * rng.choice([0.01, 0.02])
    d.text((cx - s * 0.3, cy + s * 0.14), "".join(str(int(v)) for v in rng.integers(0, 10, 10)), fill=(15, 15, 15), font=load_font(max(6, int(s * 0.1))))


def _credit_card(d, rng, cx, cy, s):
    col = _random_colour(rng, (0.2, 0.9), (0.2, 0.9))
    d.rounded_rectangle([cx - s * 0.45, cy - s * 0.28, cx + s * 0.45, cy + s * 0.28], radius=s * 0.05, fill=col)
    d.rounded_rectangle([cx - s * 0.35, cy - s * 0.12, cx - s * 0.18, cy + s * 0.02], radius=s * 0.02, fill=(220, 190, 90))
    d.text((cx - s * 0.35, cy + s * 0.08), " ".join("".join(str(int(v)) for v in rng.integers(0, 10, 4)) for _ in range(4)),
           fill=(240, 240, 240), font=load_font(max(6, int(s * 0.07))))


def _text_page(d, rng, cx, cy, s):
    d.rectangle([cx - s * 0.4, cy - s * 0.5, cx + s * 0.4, cy + s * 0.5], fill=jitter(rng, (248, 248, 242), 6))
    words = ("the", "and", "of", "to", "meeting", "today", "notes", "list", "week", "home", "shop", "call", "plan")
    font = load_font(max(6, int(s * 0.07)))
    for k in range(10):
        line = " ".join(str(rng.choice(words)) for _ in range(4))
        d.text((cx - s * 0.35, cy - s * 0.45 + k * s * 0.09), line, fill=(30, 30, 40), font=font)


def _sign(d, rng, cx, cy, s):
    kind = int(rng.integers(0, 3))
    d.rectangle([cx - s * 0.03, cy, cx + s * 0.03, cy + s * 0.6], fill=(120, 120, 125))
    if kind == 0:  # stop sign
        pts = [(cx + s * 0.3 * math.cos(a + math.pi / 8), cy - s * 0.1 + s * 0.3 * math.sin(a + math.pi / 8)) for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)]
        d.polygon(pts, fill=(200, 20, 30))
        d.text((cx - s * 0.2, cy - s * 0.17), "STOP", fill=(250, 250, 250), font=load_font(max(6, int(s * 0.13))))
    elif kind == 1:  # traffic light
        d.rectangle([cx - s * 0.12, cy - s * 0.55, cx + s * 0.12, cy + s * 0.05], fill=(30, 30, 30))
        for k, col in enumerate([(230, 40, 30), (240, 190, 30), (40, 200, 60)]):
            _disc(d, cx, cy - s * 0.45 + k * s * 0.19, s * 0.07, col if rng.random() < 0.5 else darker(col, 0.35))
    else:  # a warning triangle
        d.polygon([(cx, cy - s * 0.45), (cx + s * 0.35, cy + s * 0.1), (cx - s * 0.35, cy + s * 0.1)], fill=(240, 200, 30))
        d.text((cx - s * 0.03, cy - s * 0.25), "!", fill=(10, 10, 10), font=load_font(max(6, int(s * 0.25))))


# --------------------------------------------------------------------------- vehicles and buildings
def _bicycle(d, rng, cx, cy, s):
    frame = _random_colour(rng)
    w = max(1, int(s * 0.035))
    for x in (cx - s * 0.3, cx + s * 0.3):
        d.ellipse([x - s * 0.2, cy - s * 0.05, x + s * 0.2, cy + s * 0.35], outline=(30, 30, 30), width=w)
    pts = [(cx - s * 0.3, cy + s * 0.15), (cx - s * 0.05, cy - s * 0.15), (cx + s * 0.2, cy - s * 0.15), (cx + s * 0.3, cy + s * 0.15), (cx, cy + s * 0.15), (cx - s * 0.3, cy + s * 0.15)]
    d.line(pts, fill=frame, width=w)
    d.line([(cx - s * 0.05, cy - s * 0.15), (cx, cy + s * 0.15)], fill=frame, width=w)


def _bus(d, rng, cx, cy, s):
    col = _random_colour(rng, (0.5, 1.0), (0.5, 1.0))
    d.rounded_rectangle([cx - s * 0.6, cy - s * 0.3, cx + s * 0.6, cy + s * 0.25], radius=s * 0.06, fill=col)
    for k in range(6):
        x = cx - s * 0.55 + k * s * 0.19
        d.rectangle([x, cy - s * 0.22, x + s * 0.15, cy - s * 0.05], fill=(170, 210, 230))
    for x in (cx - s * 0.38, cx + s * 0.38):
        _disc(d, x, cy + s * 0.27, s * 0.1, (25, 25, 25))


def _airplane(d, rng, cx, cy, s):
    body = jitter(rng, (235, 235, 240), 10)
    ang = rng.uniform(-0.4, 0.4)
    _poly(d, rng, cx, cy, s, [(-0.55, -0.06), (0.5, -0.06), (0.6, 0), (0.5, 0.06), (-0.55, 0.06)], body, ang=ang)
    _poly(d, rng, cx, cy, s, [(-0.05, 0), (0.15, 0), (-0.15, -0.4), (-0.25, -0.4)], darker(body, 0.85), ang=ang)
    _poly(d, rng, cx, cy, s, [(-0.05, 0), (0.15, 0), (-0.15, 0.4), (-0.25, 0.4)], darker(body, 0.85), ang=ang)
    _poly(d, rng, cx, cy, s, [(-0.55, 0), (-0.45, 0), (-0.55, -0.2)], _random_colour(rng), ang=ang)


def _boat(d, rng, cx, cy, s):
    W = d.im.size[0]
    d.rectangle([0, cy + s * 0.15, W, W], fill=hsv(rng.uniform(0.52, 0.62), 0.6, rng.uniform(0.4, 0.8)))
    d.polygon([(cx - s * 0.45, cy), (cx + s * 0.45, cy), (cx + s * 0.3, cy + s * 0.2), (cx - s * 0.3, cy + s * 0.2)], fill=_random_colour(rng, (0.3, 0.9), (0.3, 0.9)))
    d.line([(cx, cy), (cx, cy - s * 0.6)], fill=(90, 70, 50), width=max(1, int(s * 0.03)))
    d.polygon([(cx + s * 0.02, cy - s * 0.58), (cx + s * 0.4, cy - s * 0.05), (cx + s * 0.02, cy - s * 0.05)], fill=(250, 250, 245))


def _house(d, rng, cx, cy, s):
    wall = _random_colour(rng, (0.1, 0.6), (0.5, 1.0))
    d.rectangle([cx - s * 0.4, cy - s * 0.1, cx + s * 0.4, cy + s * 0.45], fill=wall)
    d.polygon([(cx - s * 0.5, cy - s * 0.1), (cx, cy - s * 0.5), (cx + s * 0.5, cy - s * 0.1)], fill=hsv(rng.uniform(0, 0.08), 0.6, rng.uniform(0.3, 0.6)))
    d.rectangle([cx - s * 0.08, cy + s * 0.15, cx + s * 0.08, cy + s * 0.45], fill=darker(wall, 0.5))
    for x in (cx - s * 0.3, cx + s * 0.15):
        d.rectangle([x, cy, x + s * 0.15, cy + s * 0.13], fill=(170, 210, 230))


def _city(d, rng, cx, cy, s):
    W = d.im.size[0]
    d.rectangle([0, 0, W, W], fill=hsv(0.6, rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.95)))
    x = 0.0
    while x < W:
        w, h = W * rng.uniform(0.08, 0.2), W * rng.uniform(0.25, 0.8)
        col = hsv(rng.uniform(0.5, 0.7), rng.uniform(0, 0.3), rng.uniform(0.2, 0.6))
        d.rectangle([x, W - h, x + w, W], fill=col)
        for wy in np.arange(W - h + W * 0.03, W, W * 0.06):
            for wx in np.arange(x + w * 0.15, x + w * 0.85, w * 0.3):
                d.rectangle([wx, wy, wx + w * 0.12, wy + W * 0.025], fill=(240, 220, 150) if rng.random() < 0.5 else darker(col, 0.6))
        x += w


# --------------------------------------------------------------------------- textures and patterns
def _full(d):
    W = d.im.size[0]
    return W, W


def _stripes(d, rng, cx, cy, s):
    W, _ = _full(d)
    a, b = _random_colour(rng), _random_colour(rng)
    step = W * rng.uniform(0.04, 0.12)
    for k, x in enumerate(np.arange(-W, 2 * W, step)):
        d.polygon([(x, 0), (x + step, 0), (x + step + W * 0.5, W), (x + W * 0.5, W)], fill=a if k % 2 else b)


def _checkerboard(d, rng, cx, cy, s):
    W, _ = _full(d)
    a, b = _random_colour(rng), _random_colour(rng, (0, 0.3), (0.05, 1.0))
    step = W * rng.uniform(0.06, 0.15)
    for i, x in enumerate(np.arange(0, W, step)):
        for j, y in enumerate(np.arange(0, W, step)):
            d.rectangle([x, y, x + step, y + step], fill=a if (i + j) % 2 else b)


def _polka_dots(d, rng, cx, cy, s):
    W, _ = _full(d)
    d.rectangle([0, 0, W, W], fill=_random_colour(rng))
    dot = _random_colour(rng)
    step = W * rng.uniform(0.07, 0.14)
    for i, x in enumerate(np.arange(0, W + step, step)):
        for y in np.arange(0, W + step, step):
            _disc(d, x, y + (step / 2 if i % 2 else 0), step * 0.25, dot)


def _brick_wall(d, rng, cx, cy, s):
    W, _ = _full(d)
    mortar = jitter(rng, (200, 195, 185), 15)
    d.rectangle([0, 0, W, W], fill=mortar)
    brick = hsv(rng.uniform(0.0, 0.06), rng.uniform(0.5, 0.8), rng.uniform(0.4, 0.7))
    h = W * rng.uniform(0.05, 0.09)
    for r, y in enumerate(np.arange(0, W, h)):
        for x in np.arange(-(r % 2) * h, W, 2.2 * h):
            d.rectangle([x + 1, y + 1, x + 2.1 * h, y + h - 1], fill=jitter(rng, brick, 15))


def _wood_grain(d, rng, cx, cy, s):
    W, _ = _full(d)
    wood = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.75))
    d.rectangle([0, 0, W, W], fill=wood)
    for _ in range(40):
        y = rng.uniform(0, W)
        amp, freq = W * rng.uniform(0.005, 0.03), rng.uniform(1, 4)
        pts = [(x, y + amp * math.sin(freq * x / W * 2 * math.pi)) for x in np.linspace(0, W, 24)]
        d.line(pts, fill=darker(wood, rng.uniform(0.7, 0.9)), width=1)


def _tiles(d, rng, cx, cy, s):
    W, _ = _full(d)
    grout = jitter(rng, (90, 90, 90), 40)
    d.rectangle([0, 0, W, W], fill=grout)
    tile = _random_colour(rng, (0, 0.5), (0.5, 1.0))
    step = W * rng.uniform(0.1, 0.2)
    for x in np.arange(0, W, step):
        for y in np.arange(0, W, step):
            d.rectangle([x + 2, y + 2, x + step - 2, y + step - 2], fill=jitter(rng, tile, 6))


def _keyboard(d, rng, cx, cy, s):
    body = jitter(rng, (50, 50, 55) if rng.random() < 0.5 else (220, 220, 225), 10)
    d.rounded_rectangle([cx - s * 0.6, cy - s * 0.22, cx + s * 0.6, cy + s * 0.22], radius=s * 0.03, fill=body)
    key = darker(body, 0.8) if body[0] > 128 else tuple(min(255, c + 40) for c in body)
    for r in range(4):
        for c in range(12):
            x, y = cx - s * 0.56 + c * s * 0.095, cy - s * 0.18 + r * s * 0.095
            d.rectangle([x, y, x + s * 0.08, y + s * 0.08], fill=key)


def _headphones(d, rng, cx, cy, s):
    col = _random_colour(rng, (0, 0.9), (0.05, 0.9))
    d.arc([cx - s * 0.35, cy - s * 0.45, cx + s * 0.35, cy + s * 0.25], 180, 360, fill=col, width=max(2, int(s * 0.06)))
    for x in (cx - s * 0.35, cx + s * 0.35):
        d.rounded_rectangle([x - s * 0.1, cy - s * 0.1, x + s * 0.1, cy + s * 0.2], radius=s * 0.05, fill=darker(col, 0.8))


def _candle(d, rng, cx, cy, s):
    wax = _random_colour(rng, (0, 0.5), (0.7, 1.0))
    d.rectangle([cx - s * 0.12, cy - s * 0.2, cx + s * 0.12, cy + s * 0.45], fill=wax)
    d.line([(cx, cy - s * 0.2), (cx, cy - s * 0.27)], fill=(20, 20, 20), width=1)
    d.ellipse([cx - s * 0.05, cy - s * 0.45, cx + s * 0.05, cy - s * 0.26], fill=(255, 200, 60))


def _star_heart(d, rng, cx, cy, s):
    col = _random_colour(rng, (0.6, 1.0), (0.7, 1.0))
    if rng.random() < 0.5:
        pts = []
        for k in range(10):
            r = s * (0.45 if k % 2 == 0 else 0.2)
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        d.polygon(pts, fill=col)
    else:
        _disc(d, cx - s * 0.15, cy - s * 0.1, s * 0.2, col)
        _disc(d, cx + s * 0.15, cy - s * 0.1, s * 0.2, col)
        d.polygon([(cx - s * 0.34, cy - s * 0.03), (cx + s * 0.34, cy - s * 0.03), (cx, cy + s * 0.4)], fill=col)


#: The pretext classes, in label order: the name and its drawer. Six of the world's own
#: everyday drawers (car, pet, selfie, landscape, food, party) and fifty drawn here.
CLASSES: dict[str, Callable] = {
    "car": draw._car, "pet": draw._pet, "selfie": draw._selfie, "landscape": draw._landscape,
    "meal": draw._food, "party": draw._party,
    "mug": _mug, "wine_glass": _wine_glass, "water_bottle": _water_bottle, "soda_can": _soda_can,
    "wine_bottle": _wine_bottle, "coffee_cup": _coffee_cup, "plate": _plate,
    "apple": _apple, "banana": _banana, "orange": _orange, "green_grapes": _grapes, "watermelon": _watermelon,
    "donut": _donut, "cake": _cake, "ice_cream": _ice_cream, "fried_egg": _fried_egg, "bread": _bread,
    "wrapped_candy": _candy,
    "flower": _flower, "sunflower": _sunflower, "tree": _tree, "cactus": _cactus, "palm_frond": _palm_frond,
    "grass": _grass, "sky": _sky, "sunset": _sunset, "mountains": _mountains,
    "cat_face": _cat_face, "fish": _fish, "bird": _bird, "butterfly": _butterfly, "hand": _hand,
    "laptop": _laptop, "phone": _phone, "television": _television, "books": _book, "clock": _clock,
    "lamp": _lamp, "chair": _chair, "shoe": _shoe, "t_shirt": _t_shirt, "hat": _hat, "glasses": _glasses,
    "key": _key, "scissors": _scissors, "pencil": _pencil, "umbrella": _umbrella, "balloons": _balloons,
    "ball": _ball, "dice": _dice, "playing_cards": _playing_cards, "gift_box": _gift_box,
    "cardboard_box": _cardboard_box, "barcode_label": _barcode_label, "credit_card": _credit_card,
    "text_page": _text_page, "road_sign": _sign, "keyboard": _keyboard, "headphones": _headphones,
    "candle": _candle, "star_or_heart": _star_heart,
    "bicycle": _bicycle, "bus": _bus, "airplane": _airplane, "boat": _boat, "house": _house, "city": _city,
    "stripes": _stripes, "checkerboard": _checkerboard, "polka_dots": _polka_dots, "brick_wall": _brick_wall,
    "wood_grain": _wood_grain, "tiles": _tiles,
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASSES)
# Scenes and textures that fill the frame themselves.
_FULL_FRAME = {"landscape", "party", "grass", "sky", "sunset", "mountains", "city", "stripes", "checkerboard",
               "polka_dots", "brick_wall", "wood_grain", "tiles", "boat"}


# --------------------------------------------------------------------------- images
def render(label: int, split: str, index: int, *, seed: int, size: int) -> np.ndarray:
    """One pretext image of class ``CLASS_NAMES[label]``, uint8 (size, size, 3).

    Drawn by the world's :func:`drugjax.synthetic.draw.render` (phone-photo or product-shot
    style, clutter, lighting, filters) from its own seed, then saved as JPEG at a random
    quality and decoded again (compression artefacts, as on Instagram).
    """
    image_seed = (PRETEXT_STREAM, seed, SPLITS.index(split), label, index)
    rng = np.random.default_rng(list(image_seed) + [1])
    style = "instagram" if rng.random() < 0.7 else "web"
    arr = draw.render(CLASS_NAMES[label], style, size, image_seed, clutter=float(rng.uniform(0, 1)),
                      drawers=CLASSES, full_frame=_FULL_FRAME)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="JPEG", quality=int(rng.integers(35, 96)))
    return np.asarray(Image.open(buffer).convert("RGB"), np.uint8)


def _render_class(args: tuple[int, str, int, int, int]) -> np.ndarray:
    label, split, count, seed, size = args
    return np.stack([render(label, split, i, seed=seed, size=size) for i in range(count)])


def generate(split: str, *, per_class: int, seed: int, size: int, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of every class: (images uint8 (N, size, size, 3), labels int32 (N,)).

    Class by class in a process pool; each image is drawn from its own seed, so the
    result does not depend on the number of workers.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    workers = workers or min(len(CLASS_NAMES), os.cpu_count() or 1)
    jobs = [(label, split, per_class, seed, size) for label in range(len(CLASS_NAMES))]
    if workers == 1:
        parts = list(map(_render_class, jobs))
    else:
        # spawn, not fork: the caller (train.py) already runs JAX's threads.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_render_class, jobs))
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int32), per_class)
    return np.concatenate(parts), labels


def load(split: str, *, per_class: int, seed: int, size: int, cache_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`generate`, cached as ``.npy`` files in ``cache_dir`` (drawn once)."""
    if cache_dir is None:
        return generate(split, per_class=per_class, seed=seed, size=size)
    cache_dir = Path(cache_dir)
    name = f"pretext-v{PRETEXT_VERSION}-{split}-seed{seed}-{per_class}x{len(CLASS_NAMES)}-{size}px"
    images_path, meta_path = cache_dir / f"{name}.npy", cache_dir / f"{name}.json"
    if images_path.exists() and meta_path.exists():
        images = np.load(images_path, mmap_mode="r")
        if images.shape == (per_class * len(CLASS_NAMES), size, size, 3):
            return np.asarray(images), np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int32), per_class)
        log.warning("pretext cache %s has shape %s; drawing it again", images_path, images.shape)
    log.info("drawing the pretext %s split: %d images of %d classes at %d px (once; cached in %s)",
             split, per_class * len(CLASS_NAMES), len(CLASS_NAMES), size, cache_dir)
    images, labels = generate(split, per_class=per_class, seed=seed, size=size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = images_path.with_suffix(".npy.tmp")
    with open(tmp, "wb") as f:
        np.save(f, images)
    tmp.replace(images_path)
    meta_path.write_text(json.dumps({"version": PRETEXT_VERSION, "split": split, "seed": seed, "per_class": per_class,
                                     "size": size, "classes": list(CLASS_NAMES)}, indent=1) + "\n")
    return images, labels


def contact_sheet(path: str | Path, *, seed: int = 0, size: int = 64, per_class: int = 4) -> None:
    """An image (PNG or JPEG, by the suffix) with ``per_class`` pretext images of every class, one class per row."""
    rows = [np.concatenate([render(label, "val", i, seed=seed, size=size) for i in range(per_class)], axis=1)
            for label in range(len(CLASS_NAMES))]
    columns = 4
    per_column = math.ceil(len(rows) / columns)
    blank = np.full_like(rows[0], 255)
    sheet = np.concatenate([np.concatenate((rows + [blank] * (columns * per_column - len(rows)))[c * per_column:(c + 1) * per_column])
                            for c in range(columns)], axis=1)
    Image.fromarray(sheet).save(path)
