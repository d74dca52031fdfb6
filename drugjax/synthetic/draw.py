"""Procedural images for the synthetic world: drugs, confusers and everyday scenes.

Each image is drawn from its own seed, so images can be drawn in any order or in parallel
and still come out byte-identical. Shapes are drawn with Pillow at twice the target size
on a square canvas, cropped to the picture's aspect ratio around the object and reduced
(cheap anti-aliasing); textures, colour filters and noise are numpy. Text (price menus,
chats, memes) uses Pillow's bundled scalable font, the same glyphs on every machine.

Two styles share the same object drawers, so what a model learns from one transfers to
the other:

* ``instagram`` (a phone photo): a room or table background with uneven light, mottled
  texture, clutter and soft focus, objects smaller and off-centre, phone-camera colour
  filters, vignetting, camera blur and sensor noise; an account's :class:`Look` (its
  favourite filter, background and framing) is followed by most of its pictures;
* ``web`` (a product or stock shot): clean white backgrounds (35 % are photos in a real
  setting instead), large centred objects, pill-identification charts, semi-transparent
  stock-photo watermarks, no phone filter.

Which pictures get which style is the generator's choice (``synthetic``): both styles
appear among web positives and web negatives, so style says nothing about the label.
"""

from __future__ import annotations

import colorsys
import functools
import math
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Contents that show a drug ...
DRUG_CONTENTS: tuple[str, ...] = ("weed_leaf", "weed_bud", "joint", "pills", "syrup_cup", "syrup_bottle")
# ... visual confusers of drugs ...
CONFUSER_CONTENTS: tuple[str, ...] = ("vitamins", "green_food", "houseplant", "purple_drink", "money", "screenshot")
# ... and everyday scenes.
GENERIC_CONTENTS: tuple[str, ...] = ("selfie", "landscape", "food", "pet", "party", "car")
CONTENTS: tuple[str, ...] = DRUG_CONTENTS + CONFUSER_CONTENTS + GENERIC_CONTENTS
STYLES: tuple[str, ...] = ("instagram", "web")
# Share of web images that are photos in a real setting rather than product shots.
WEB_PHOTO_SHARE = 0.35

Colour = tuple[int, int, int]


def _box(xy):
    (x0, y0, x1, y1) = xy
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


class Canvas(ImageDraw.ImageDraw):
    """ImageDraw that accepts boxes with swapped corners (small sizes produce them)."""

    def rectangle(self, xy, *a, **kw):
        return super().rectangle(_box(xy), *a, **kw)

    def ellipse(self, xy, *a, **kw):
        return super().ellipse(_box(xy), *a, **kw)

    def rounded_rectangle(self, xy, *a, **kw):
        return super().rounded_rectangle(_box(xy), *a, **kw)

    def arc(self, xy, *a, **kw):
        return super().arc(_box(xy), *a, **kw)


def hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def jitter(rng: np.random.Generator, c: Colour, amount: float = 18) -> Colour:
    return tuple(int(np.clip(x + rng.normal(0, amount), 0, 255)) for x in c)  # type: ignore[return-value]


def darker(c: Colour, f: float = 0.7) -> Colour:
    return tuple(int(x * f) for x in c)  # type: ignore[return-value]


def rotate(pts: np.ndarray, ang: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(ang), math.sin(ang)
    x = pts[:, 0] * c - pts[:, 1] * s + cx
    y = pts[:, 0] * s + pts[:, 1] * c + cy
    return list(zip(x.tolist(), y.tolist()))


def _ellipse_pts(a: float, b: float, n: int = 20) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], 1)


# --------------------------------------------------------------------------- objects
# Every drawer takes (draw, rng, cx, cy, s): s is the object's size in pixels.


def _leaf(d: ImageDraw.ImageDraw, rng, cx, cy, s, ang=None, col=None) -> None:
    """A palmate cannabis leaf: 5-9 serrated leaflets fanning from one point."""
    ang = -math.pi / 2 + rng.normal(0, 0.6) if ang is None else ang
    col = col or hsv(rng.uniform(0.22, 0.36), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.75))
    n = int(rng.choice([5, 7, 7, 9]))
    spread = rng.uniform(0.22, 0.38)
    d.line([(cx, cy), (cx - math.cos(ang) * s * 0.45, cy - math.sin(ang) * s * 0.45)],
           fill=darker(col), width=max(1, int(s * 0.04)))
    m = 12
    t = np.linspace(0, 1, m)
    serr = 1 + 0.35 * (np.arange(m) % 2 * 2 - 1) * (rng.random() < 0.85)
    for i in range(n):
        off = i - (n - 1) / 2
        a = ang + off * spread
        length = s * (1 - 0.14 * abs(off)) * rng.uniform(0.9, 1.05)
        width = length * rng.uniform(0.08, 0.13) * np.sin(np.pi * t) ** 0.8 * serr
        pts = np.concatenate([np.stack([t * length, width], 1), np.stack([t * length, -width], 1)[::-1]])
        d.polygon(rotate(pts, a, cx, cy), fill=jitter(rng, col, 10))
        d.line(rotate(np.array([[0, 0], [length * 0.9, 0]]), a, cx, cy), fill=darker(col, 0.8), width=1)


def _bud(d, rng, cx, cy, s) -> None:
    """A cannabis bud: a dense cluster of green lumps with orange hairs and white frost."""
    col = hsv(rng.uniform(0.2, 0.34), rng.uniform(0.35, 0.8), rng.uniform(0.35, 0.8))
    n = int(rng.integers(25, 55))
    ang = rng.uniform(0, math.pi)
    pts = rng.normal(0, 1, (n, 2)) * [s * 0.22, s * 0.32]
    pts = np.array(rotate(pts, ang, cx, cy))
    for x, y in pts:
        r = s * rng.uniform(0.07, 0.15)
        d.ellipse([x - r, y - r, x + r, y + r], fill=jitter(rng, col, 16))
    if rng.random() < 0.4:  # purple strains
        for x, y in pts[: n // 4]:
            r = s * 0.06
            d.ellipse([x - r, y - r, x + r, y + r], fill=hsv(0.8, 0.5, 0.45))
    for _ in range(int(rng.integers(8, 25))):
        x, y = pts[rng.integers(n)]
        a = rng.uniform(0, 2 * math.pi)
        d.line([(x, y), (x + math.cos(a) * s * 0.1, y + math.sin(a) * s * 0.1)],
               fill=hsv(rng.uniform(0.04, 0.1), 0.8, rng.uniform(0.6, 0.9)), width=1)
    for _ in range(int(rng.integers(15, 45))):
        x, y = pts[rng.integers(n)] + rng.normal(0, s * 0.08, 2)
        d.point((float(x), float(y)), fill=(235, 240, 225))


def _joint(d, rng, cx, cy, s) -> None:
    """A rolled joint or blunt, sometimes next to a small bud or a lighter."""
    ang = rng.uniform(0, math.pi)
    blunt = rng.random() < 0.4
    col = hsv(0.08, 0.6, 0.4) if blunt else (235, 232, 220)
    pts = np.array([[-s * 0.6, -s * 0.07], [s * 0.6, -s * 0.11], [s * 0.6, s * 0.11], [-s * 0.6, s * 0.07]])
    d.polygon(rotate(pts, ang, cx, cy), fill=jitter(rng, col, 8))
    tip = rotate(np.array([[s * 0.6, 0.0]]), ang, cx, cy)[0]
    r = s * 0.1
    d.ellipse([tip[0] - r, tip[1] - r, tip[0] + r, tip[1] + r], fill=(255, 120, 30) if rng.random() < 0.5 else (90, 90, 90))
    if rng.random() < 0.5:
        _bud(d, rng, cx + rng.normal(0, s * 0.4), cy + rng.normal(0, s * 0.4), s * 0.5)


PILL_SHAPES = ("round", "oval", "capsule", "bar", "triangle", "pentagon", "hexagon", "shield")


def _pill_colour(rng, vitamin: bool = False) -> tuple[Colour, Colour]:
    if vitamin:  # vitamins lean amber/brown/yellow, but white and orange overlap with drugs
        choice = rng.choice(["amber", "yellow", "brown", "white", "orange", "red"])
    else:
        choice = rng.choice(["white", "white", "blue", "yellow", "green", "pink", "peach", "orange", "purple"])
    base = {
        "white": hsv(0.1, rng.uniform(0, 0.08), rng.uniform(0.85, 1.0)),
        "blue": hsv(rng.uniform(0.52, 0.62), rng.uniform(0.3, 0.8), rng.uniform(0.6, 0.95)),
        "yellow": hsv(rng.uniform(0.12, 0.17), rng.uniform(0.4, 0.9), rng.uniform(0.8, 1.0)),
        "green": hsv(rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.7), rng.uniform(0.5, 0.85)),
        "pink": hsv(rng.uniform(0.9, 0.98), rng.uniform(0.2, 0.5), rng.uniform(0.85, 1.0)),
        "peach": hsv(0.07, rng.uniform(0.25, 0.5), rng.uniform(0.85, 1.0)),
        "orange": hsv(rng.uniform(0.05, 0.1), rng.uniform(0.6, 0.95), rng.uniform(0.8, 1.0)),
        "purple": hsv(rng.uniform(0.72, 0.8), rng.uniform(0.3, 0.6), rng.uniform(0.6, 0.9)),
        "amber": hsv(rng.uniform(0.08, 0.12), rng.uniform(0.7, 1.0), rng.uniform(0.6, 0.9)),
        "brown": hsv(rng.uniform(0.05, 0.09), rng.uniform(0.5, 0.8), rng.uniform(0.35, 0.6)),
        "red": hsv(rng.uniform(0.98, 1.02), rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9)),
    }[str(choice)]
    second = base if rng.random() < 0.6 else _pill_colour(rng, vitamin)[0]
    return base, second


def _pill(d, rng, cx, cy, s, shape: str, col: Colour, col2: Colour, ang=None) -> None:
    ang = rng.uniform(0, math.pi) if ang is None else ang
    edge = darker(col, 0.8)
    if shape == "round":
        d.ellipse([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], fill=col, outline=edge)
        if rng.random() < 0.6:
            d.line(rotate(np.array([[-s * 0.4, 0], [s * 0.4, 0]]), ang, cx, cy), fill=edge, width=1)
    elif shape == "oval":
        d.polygon(rotate(_ellipse_pts(s * 0.6, s * 0.33), ang, cx, cy), fill=col, outline=edge)
    elif shape == "capsule":
        half = np.concatenate([np.array([[0, -s * 0.22]]), _ellipse_pts(s * 0.22, s * 0.22, 16)[4:13] + [-s * 0.45, 0],
                               np.array([[0, s * 0.22]])])
        d.polygon(rotate(half, ang, cx, cy), fill=col, outline=edge)
        d.polygon(rotate(half * [-1, 1], ang, cx, cy), fill=col2, outline=darker(col2, 0.8))
    elif shape == "bar":  # "xanax bar": long, scored in four
        pts = np.array([[-s * 0.8, -s * 0.18], [s * 0.8, -s * 0.18], [s * 0.8, s * 0.18], [-s * 0.8, s * 0.18]])
        d.polygon(rotate(pts, ang, cx, cy), fill=col, outline=edge)
        for k in (-0.4, 0.0, 0.4):
            d.line(rotate(np.array([[s * k, -s * 0.14], [s * k, s * 0.14]]), ang, cx, cy), fill=edge, width=1)
    else:
        n = {"triangle": 3, "pentagon": 5, "hexagon": 6, "shield": 5}[shape]
        pts = _ellipse_pts(s * 0.5, s * (0.42 if shape == "shield" else 0.5), n)
        d.polygon(rotate(pts, ang, cx, cy), fill=col, outline=edge)
    if rng.random() < 0.7:  # specular highlight
        r = s * 0.08
        d.ellipse([cx - s * 0.15 - r, cy - s * 0.12 - r, cx - s * 0.15 + r, cy - s * 0.12 + r],
                  fill=jitter(rng, (250, 250, 250), 4))


def _pill_group(d, rng, cx, cy, s, vitamin: bool = False) -> None:
    """A handful of pills: scattered, in a row, on a palm, in a blister or a baggie."""
    layout = rng.choice(["scatter", "scatter", "row", "palm", "blister", "bag", "pile"])
    kinds = int(rng.integers(1, 4))
    shapes = [str(rng.choice(PILL_SHAPES if not vitamin else ("round", "oval", "capsule", "oval"))) for _ in range(kinds)]
    cols = [_pill_colour(rng, vitamin) for _ in range(kinds)]
    ps = s * rng.uniform(0.16, 0.28)
    if layout == "palm":
        skin = hsv(rng.uniform(0.04, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
        d.ellipse([cx - s * 0.55, cy - s * 0.45, cx + s * 0.55, cy + s * 0.5], fill=skin)
        for k in range(4):
            fx = cx - s * 0.45 + k * s * 0.28
            d.rounded_rectangle([fx, cy - s * 0.95, fx + s * 0.2, cy - s * 0.35], radius=s * 0.09, fill=skin)
    if layout == "blister":
        d.rectangle([cx - s * 0.6, cy - s * 0.45, cx + s * 0.6, cy + s * 0.45], fill=jitter(rng, (200, 200, 205), 12))
    if layout == "bag":
        d.rectangle([cx - s * 0.6, cy - s * 0.6, cx + s * 0.6, cy + s * 0.6], fill=jitter(rng, (215, 220, 225), 10),
                    outline=(240, 240, 240))
        d.rectangle([cx - s * 0.6, cy - s * 0.6, cx + s * 0.6, cy - s * 0.5], fill=(200, 60, 60))
    n = int(rng.integers(1, 16))
    for i in range(n):
        k = i % kinds
        if layout == "row":
            x, y = cx + (i - n / 2) * ps * 1.2, cy + rng.normal(0, ps * 0.2)
        elif layout == "blister":
            x, y = cx - s * 0.45 + (i % 4) * s * 0.3, cy - s * 0.28 + (i // 4 % 3) * s * 0.28
        elif layout == "pile":
            x, y = cx + rng.normal(0, s * 0.15), cy + rng.normal(0, s * 0.12)
        else:
            x, y = cx + rng.normal(0, s * 0.3), cy + rng.normal(0, s * 0.3)
        _pill(d, rng, x, y, ps, shapes[k], *cols[k])


def _purple(rng, confuser: bool = False) -> Colour:
    """Promethazine-codeine purple; grape soda and wine reach further into red and blue."""
    h = rng.uniform(0.7, 0.97) if confuser else rng.uniform(0.74, 0.88)
    return hsv(h, rng.uniform(0.45, 0.9), rng.uniform(0.3, 0.75))


def cup(d, rng, cx, cy, s, liquid: Colour, double: bool, cup_col: Colour = (245, 245, 240)) -> None:
    top, bot, h = s * 0.45, s * 0.32, s * 1.0
    y0, y1 = cy - h / 2, cy + h / 2
    d.polygon([(cx - top, y0), (cx + top, y0), (cx + bot, y1), (cx - bot, y1)], fill=jitter(rng, cup_col, 6))
    if double:
        d.line([(cx - top * 0.97, y0 + h * 0.12), (cx + top * 0.97, y0 + h * 0.12)], fill=darker(cup_col, 0.85), width=2)
    d.ellipse([cx - top, y0 - s * 0.1, cx + top, y0 + s * 0.1], fill=darker(cup_col, 0.92))
    d.ellipse([cx - top * 0.85, y0 - s * 0.07, cx + top * 0.85, y0 + s * 0.08], fill=liquid)
    if rng.random() < 0.4:
        d.line([(cx + top * 0.3, y0), (cx + top * 0.6, y0 - s * 0.5)], fill=hsv(rng.random(), 0.7, 0.9), width=max(1, int(s * 0.04)))


def _bottle(d, rng, cx, cy, s, liquid: Colour, label: Colour) -> None:
    w, h = s * 0.45, s * 1.1
    glass = jitter(rng, (120, 75, 35) if rng.random() < 0.5 else (215, 215, 220), 10)
    d.rounded_rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], radius=s * 0.06, fill=glass)
    level = rng.uniform(0.3, 0.9)
    d.rectangle([cx - w / 2 + 2, cy + h / 2 - h * level, cx + w / 2 - 2, cy + h / 2 - 2], fill=liquid)
    d.rectangle([cx - w * 0.25, cy - h / 2 - s * 0.15, cx + w * 0.25, cy - h / 2], fill=jitter(rng, (240, 240, 240), 10))
    d.rectangle([cx - w / 2, cy - h * 0.1, cx + w / 2, cy + h * 0.25], fill=label)
    for k in range(3):
        y = cy - h * 0.05 + k * h * 0.09
        d.line([(cx - w * 0.4, y), (cx + w * rng.uniform(0, 0.4), y)], fill=(60, 60, 60), width=1)


def _syrup_cup(d, rng, cx, cy, s) -> None:
    cup(d, rng, cx, cy, s, _purple(rng), double=rng.random() < 0.7)
    if rng.random() < 0.3:  # candy or a soda bottle beside it
        for _ in range(int(rng.integers(2, 6))):
            x, y = cx + rng.uniform(-s, s), cy + s * 0.5 + rng.uniform(0, s * 0.2)
            d.rectangle([x, y, x + s * 0.1, y + s * 0.08], fill=hsv(rng.random(), 0.8, 0.9))


def _syrup_bottle(d, rng, cx, cy, s) -> None:
    _bottle(d, rng, cx, cy, s, _purple(rng), jitter(rng, (250, 250, 250) if rng.random() < 0.6 else (240, 140, 40), 8))
    if rng.random() < 0.4:
        cup(d, rng, cx + s * 0.6, cy + s * 0.2, s * 0.6, _purple(rng), double=True)


def _vitamins(d, rng, cx, cy, s) -> None:
    if rng.random() < 0.65:  # a labelled vitamin jar beside the pills
        bc = jitter(rng, (250, 250, 250) if rng.random() < 0.5 else (200, 110, 30), 10)
        d.rounded_rectangle([cx - s * 0.6, cy - s * 0.6, cx - s * 0.05, cy + s * 0.4], radius=s * 0.05, fill=bc)
        d.rectangle([cx - s * 0.6, cy - s * 0.3, cx - s * 0.05, cy + s * 0.1], fill=hsv(rng.random(), 0.6, 0.9))
        d.rectangle([cx - s * 0.5, cy - s * 0.75, cx - s * 0.15, cy - s * 0.6], fill=jitter(rng, (250, 250, 250), 5))
        _pill_group(d, rng, cx + s * 0.3, cy + s * 0.2, s * 0.7, vitamin=True)
    else:
        _pill_group(d, rng, cx, cy, s, vitamin=True)


def _green_food(d, rng, cx, cy, s) -> None:
    d.ellipse([cx - s * 0.7, cy - s * 0.55, cx + s * 0.7, cy + s * 0.55], fill=jitter(rng, (245, 245, 242), 6))
    kind = rng.choice(["salad", "broccoli", "matcha"])
    if kind == "matcha":
        cup(d, rng, cx, cy, s * 0.8, hsv(rng.uniform(0.2, 0.3), 0.6, 0.6), double=False)
        return
    for _ in range(int(rng.integers(12, 35))):
        x, y = cx + rng.normal(0, s * 0.25), cy + rng.normal(0, s * 0.18)
        r = s * rng.uniform(0.06, 0.14)
        col = hsv(rng.uniform(0.2, 0.36), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.8))
        if kind == "salad":
            d.polygon(rotate(_ellipse_pts(r * 1.6, r * 0.7, 10), rng.uniform(0, math.pi), x, y), fill=col)
        else:
            d.ellipse([x - r, y - r, x + r, y + r], fill=col)
    for _ in range(int(rng.integers(0, 6))):
        x, y = cx + rng.normal(0, s * 0.25), cy + rng.normal(0, s * 0.18)
        r = s * 0.08
        d.ellipse([x - r, y - r, x + r, y + r], fill=hsv(rng.choice([0.0, 0.12, 0.08]), 0.8, 0.85))


def _houseplant(d, rng, cx, cy, s) -> None:
    d.polygon([(cx - s * 0.3, cy + s * 0.2), (cx + s * 0.3, cy + s * 0.2), (cx + s * 0.22, cy + s * 0.7),
               (cx - s * 0.22, cy + s * 0.7)], fill=hsv(rng.uniform(0, 0.1), 0.6, rng.uniform(0.4, 0.8)))
    col = hsv(rng.uniform(0.22, 0.38), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7))
    for _ in range(int(rng.integers(4, 12))):
        a = rng.uniform(-math.pi * 0.95, -math.pi * 0.05)
        L = s * rng.uniform(0.3, 0.6)
        tip = (cx + math.cos(a) * L, cy + s * 0.2 + math.sin(a) * L)
        d.line([(cx, cy + s * 0.2), tip], fill=darker(col), width=1)
        d.polygon(rotate(_ellipse_pts(s * 0.16, s * 0.07, 12), a, *tip), fill=jitter(rng, col, 12))


def _purple_drink(d, rng, cx, cy, s) -> None:
    liquid = _purple(rng, confuser=True)
    if rng.random() < 0.25:  # grape soda in a disposable cup: the hardest confuser
        cup(d, rng, cx, cy, s, liquid, double=False, cup_col=jitter(rng, (230, 230, 230), 20))
        return
    top, bot, h = s * 0.38, s * 0.3, s * 1.0
    y0, y1 = cy - h / 2, cy + h / 2
    d.polygon([(cx - top, y0), (cx + top, y0), (cx + bot, y1), (cx - bot, y1)], outline=(220, 225, 230), width=2)
    lvl = y0 + h * rng.uniform(0.1, 0.4)
    d.polygon([(cx - top * 0.95, lvl), (cx + top * 0.95, lvl), (cx + bot * 0.95, y1 - 2), (cx - bot * 0.95, y1 - 2)], fill=liquid)
    for _ in range(int(rng.integers(0, 4))):  # ice
        x, y = cx + rng.uniform(-top * 0.6, top * 0.4), lvl + rng.uniform(0, h * 0.3)
        d.rectangle([x, y, x + s * 0.14, y + s * 0.14], fill=(225, 230, 240), outline=(250, 250, 255))
    if rng.random() < 0.5:
        d.ellipse([cx + top * 0.5, y0 - s * 0.1, cx + top * 0.5 + s * 0.25, y0 + s * 0.15], fill=hsv(0.15, 0.8, 0.95))


def _money(d, rng, cx, cy, s) -> None:
    base = hsv(rng.uniform(0.22, 0.32), rng.uniform(0.15, 0.35), rng.uniform(0.55, 0.8))
    for k in range(int(rng.integers(3, 10))):
        pts = np.array([[-s * 0.6, -s * 0.27], [s * 0.6, -s * 0.27], [s * 0.6, s * 0.27], [-s * 0.6, s * 0.27]])
        a = rng.normal(0, 0.4)
        x, y = cx + rng.normal(0, s * 0.12), cy + rng.normal(0, s * 0.12)
        d.polygon(rotate(pts, a, x, y), fill=jitter(rng, base, 8), outline=darker(base, 0.6))
        d.polygon(rotate(_ellipse_pts(s * 0.13, s * 0.15, 10), a, x, y), fill=darker(base, 0.75))


# Lines of the pictures' text. Dealers' price menus name drugs and prices; everybody
# else screenshots chats, notes and restaurant menus (prices too), and memes.
MENU_ITEMS = {
    "weed": ("ZAZA", "GELATO", "RUNTZ", "OG KUSH", "GAS", "EXOTIC", "CARTS", "PREROLLS", "WAX", "MOONROCKS"),
    "pills": ("XANAX 2MG", "BARS", "PERC 30", "M30", "ADDY 30", "OXY 80", "ROXY", "MOLLY", "HULKS"),
    "syrup": ("ACT", "TRIS", "WOCK", "HI-TECH", "LEAN", "CODEINE", "PROMETH"),
}
MENU_UNITS = {"weed": ("3.5G", "7G", "14G", "1OZ", "QP", "1G"), "pills": ("EA", "x10", "x100", "x20", "2MG"),
              "syrup": ("4OZ", "8OZ", "16OZ", "PINT", "SEALED")}
FOOD_ITEMS = ("TACOS", "BURRITO", "NACHOS", "LATTE", "MATCHA", "WINGS", "PIZZA", "SALAD", "SMOOTHIE", "CAKE",
              "LEMONADE", "GRAPE SODA", "BOBA", "FRIES", "BAGEL")
MENU_TITLES = ("MENU", "TODAY ONLY", "PRICES", "RESTOCK", "DROP", "SPECIALS", "NEW", "TAP IN")
CHAT_LINES = ("u up?", "omw", "lol ok", "where u at", "5 min", "bet", "send pics", "happy bday!!", "k",
              "did u see this", "call me", "lmaooo", "meet at the spot", "cashapp sent", "how much",
              "tmrw?", "love u", "dinner at 8", "same", "🔌 said 10", "wyd", "pull up", "good night")
MEME_LINES = ("MONDAY MOOD", "ME AT 3AM", "NOBODY:", "WHEN THE WIFI DIES", "POV: THE WEEKEND",
              "WHEN THE PLUG SAYS 5 MIN", "ME AFTER ONE SIP", "DON'T TALK TO ME", "WHEN THE BEAT DROPS",
              "MY BANK ACCOUNT", "GYM TIME", "TAG SOMEONE", "ON GOD", "STAY HIGH", "TRUST THE PROCESS")
# Small drawn pictures standing in for emoji at the start of a menu line.
_ICON_FOR = {"weed": "weed_leaf", "pills": "pills", "syrup": "syrup_cup"}


@functools.lru_cache(maxsize=64)
def load_font(px: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font: the same glyphs on every machine, so the same bytes."""
    return ImageFont.load_default(size=max(6, px))


def _screenshot(d, rng, cx, cy, s, menu: bool = False) -> None:
    """A phone screenshot with legible text: a dealer's price menu, a chat, a note, a food menu."""
    dark = rng.random() < 0.3
    bg = (18, 18, 22) if dark else (250, 250, 250)
    ink = (225, 225, 225) if dark else (40, 40, 40)
    W = d.im.size[0]
    d.rectangle([0, 0, W, W], fill=bg)
    d.rectangle([0, 0, W, W * 0.08], fill=jitter(rng, (60, 60, 70) if dark else (235, 235, 240), 8))
    font = load_font(int(W * rng.uniform(0.055, 0.075)))
    kind = "menu" if menu else str(rng.choice(["chat", "chat", "note", "food"]))
    y = W * 0.12
    if kind in ("menu", "food"):
        title = str(rng.choice(MENU_TITLES)) if kind == "menu" else str(rng.choice(("MENU", "SPECIALS", "TODAY")))
        d.text((W * 0.06, y), title, fill=hsv(rng.random(), 0.8, 0.9), font=load_font(int(W * 0.09)))
        y += W * 0.13
        cls = str(rng.choice(list(MENU_ITEMS)))
        while y < W * 0.9:
            x = W * 0.06
            if rng.random() < 0.7:  # an emoji-like icon
                icon = _ICON_FOR[cls] if kind == "menu" else str(rng.choice(["food", "purple_drink", "green_food"]))
                _DRAWERS[icon](d, rng, x + W * 0.03, y + W * 0.03, W * 0.05)
                x += W * 0.08
            if kind == "menu":
                item = f"{rng.choice(MENU_ITEMS[cls])} {rng.choice(MENU_UNITS[cls])} ${int(rng.integers(5, 60)) * 5}"
            else:
                item = f"{rng.choice(FOOD_ITEMS)} ${int(rng.integers(2, 15))}.{int(rng.integers(0, 10))}9"
            d.text((x, y), item, fill=ink, font=font)
            y += W * rng.uniform(0.09, 0.12)
        return
    while y < W * 0.92:
        line = str(rng.choice(CHAT_LINES))
        if kind == "chat":
            mine = rng.random() < 0.5
            bw = W * min(0.85, 0.12 + 0.045 * len(line))
            x0 = W * 0.95 - bw if mine else W * 0.05
            d.rounded_rectangle([x0, y, x0 + bw, y + W * 0.1], radius=W * 0.03,
                                fill=(30, 130, 250) if mine else ((60, 60, 65) if dark else (228, 228, 232)))
            d.text((x0 + W * 0.03, y + W * 0.015), line, fill=(255, 255, 255) if mine or dark else (20, 20, 20), font=font)
            y += W * 0.13
        else:
            d.text((W * 0.06, y), line, fill=ink, font=font)
            y += W * rng.uniform(0.08, 0.11)


def _caption_on_image(im: Image.Image, rng, text: str) -> None:
    """Meme text: white capitals with a black outline, at the top or the bottom."""
    W, H = im.size
    d = Canvas(im)
    px = int(min(W, H) * rng.uniform(0.07, 0.11))
    font = load_font(px)
    # wrap to the width (one or two lines)
    words, lines, cur = text.split(), [], ""
    for w in words:
        trial = (cur + " " + w).strip()
        if cur and d.textlength(trial, font=font) > W * 0.9:
            lines.append(cur)
            cur = w
        else:
            cur = trial
    lines.append(cur)
    y = H * 0.04 if rng.random() < 0.6 else H * 0.96 - px * 1.2 * len(lines)
    if rng.random() < 0.35:  # a white band above the picture, black text (the other meme format)
        d.rectangle([0, 0, W, px * 1.3 * len(lines) + H * 0.05], fill=(255, 255, 255))
        fill, stroke, y = (0, 0, 0), 0, H * 0.025
    else:
        fill, stroke = (255, 255, 255), max(1, px // 12)
    for line in lines:
        tw = d.textlength(line, font=font)
        d.text(((W - tw) / 2, y), line, fill=fill, font=font, stroke_width=stroke, stroke_fill=(0, 0, 0))
        y += px * 1.2


def _selfie(d, rng, cx, cy, s) -> None:
    skin = hsv(rng.uniform(0.03, 0.09), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.95))
    hair = hsv(rng.uniform(0.02, 0.12), rng.uniform(0.3, 0.9), rng.uniform(0.05, 0.7))
    d.rectangle([cx - s * 0.7, cy + s * 0.45, cx + s * 0.7, cy + s * 1.5], fill=hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.9)))
    d.ellipse([cx - s * 0.42, cy - s * 0.62, cx + s * 0.42, cy + s * 0.3], fill=hair)
    d.ellipse([cx - s * 0.35, cy - s * 0.45, cx + s * 0.35, cy + s * 0.5], fill=skin)
    for ex in (-0.14, 0.14):
        d.ellipse([cx + s * ex - s * 0.04, cy - s * 0.08, cx + s * ex + s * 0.04, cy], fill=(30, 25, 25))
    d.arc([cx - s * 0.12, cy + s * 0.1, cx + s * 0.12, cy + s * 0.28], 20, 160, fill=(150, 60, 60), width=2)


def _landscape(d, rng, cx, cy, s) -> None:
    W = d.im.size[0]
    horizon = W * rng.uniform(0.4, 0.7)
    sky = hsv(rng.choice([0.58, 0.6, 0.07]), rng.uniform(0.2, 0.6), rng.uniform(0.7, 1.0))
    d.rectangle([0, 0, W, horizon], fill=sky)
    for _ in range(int(rng.integers(0, 3))):
        x = rng.uniform(0, W)
        d.polygon([(x - W * 0.4, horizon), (x, horizon - W * rng.uniform(0.1, 0.3)), (x + W * 0.4, horizon)],
                  fill=hsv(rng.uniform(0.55, 0.7), 0.2, rng.uniform(0.35, 0.6)))
    d.rectangle([0, horizon, W, W], fill=hsv(rng.choice([0.1, 0.3, 0.55, 0.13]), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.8)))
    r = W * rng.uniform(0.04, 0.09)
    sx, sy = rng.uniform(0.1, 0.9) * W, horizon * rng.uniform(0.2, 0.8)
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=(255, 240, 190))


def _food(d, rng, cx, cy, s) -> None:
    d.ellipse([cx - s * 0.7, cy - s * 0.55, cx + s * 0.7, cy + s * 0.55], fill=jitter(rng, (245, 245, 240), 8))
    kind = rng.choice(["pizza", "burger", "pasta", "cake"])
    if kind == "pizza":
        d.ellipse([cx - s * 0.5, cy - s * 0.4, cx + s * 0.5, cy + s * 0.4], fill=hsv(0.1, 0.6, 0.9))
        for _ in range(int(rng.integers(4, 10))):
            x, y, r = cx + rng.normal(0, s * 0.18), cy + rng.normal(0, s * 0.14), s * 0.07
            d.ellipse([x - r, y - r, x + r, y + r], fill=hsv(0.0, 0.8, 0.7))
    elif kind == "burger":
        for k, col in enumerate([(200, 140, 60), (60, 160, 60), (110, 60, 30), (240, 200, 60), (200, 140, 60)]):
            y = cy - s * 0.3 + k * s * 0.13
            d.ellipse([cx - s * 0.45, y, cx + s * 0.45, y + s * 0.18], fill=col)
    else:
        col = hsv(rng.uniform(0, 0.15), rng.uniform(0.3, 0.8), rng.uniform(0.5, 0.95))
        for _ in range(int(rng.integers(10, 30))):
            x, y, r = cx + rng.normal(0, s * 0.2), cy + rng.normal(0, s * 0.15), s * rng.uniform(0.04, 0.1)
            d.ellipse([x - r, y - r, x + r, y + r], fill=jitter(rng, col, 20))


def _pet(d, rng, cx, cy, s) -> None:
    fur = hsv(rng.uniform(0.04, 0.12), rng.uniform(0, 0.6), rng.uniform(0.1, 0.95))
    d.ellipse([cx - s * 0.55, cy - s * 0.1, cx + s * 0.45, cy + s * 0.45], fill=fur)
    hx, hy = cx + s * 0.4, cy - s * 0.15
    d.ellipse([hx - s * 0.25, hy - s * 0.25, hx + s * 0.25, hy + s * 0.22], fill=jitter(rng, fur, 8))
    d.polygon([(hx - s * 0.2, hy - s * 0.15), (hx - s * 0.1, hy - s * 0.45), (hx, hy - s * 0.2)], fill=fur)
    d.polygon([(hx + s * 0.05, hy - s * 0.2), (hx + s * 0.15, hy - s * 0.45), (hx + s * 0.22, hy - s * 0.12)], fill=fur)
    for ex in (-0.08, 0.1):
        d.ellipse([hx + s * ex - s * 0.03, hy - s * 0.07, hx + s * ex + s * 0.03, hy - s * 0.01], fill=(20, 20, 20))


def _party(d, rng, cx, cy, s) -> None:
    W = d.im.size[0]
    d.rectangle([0, 0, W, W], fill=hsv(rng.uniform(0.6, 0.9), 0.6, rng.uniform(0.05, 0.25)))
    for _ in range(int(rng.integers(8, 25))):  # lights
        x, y, r = rng.uniform(0, W), rng.uniform(0, W * 0.6), W * rng.uniform(0.01, 0.05)
        d.ellipse([x - r, y - r, x + r, y + r], fill=hsv(rng.random(), 0.7, 1.0))
    for _ in range(int(rng.integers(2, 6))):  # people
        x = rng.uniform(0, W)
        d.ellipse([x - W * 0.05, W * 0.45, x + W * 0.05, W * 0.58], fill=(20, 20, 25))
        d.rectangle([x - W * 0.08, W * 0.58, x + W * 0.08, W], fill=(25, 25, 30))
    if rng.random() < 0.5:  # red party cups
        for _ in range(int(rng.integers(1, 4))):
            cup(d, rng, rng.uniform(0.2, 0.8) * W, W * 0.8, s * 0.35, (230, 200, 120), False, (200, 30, 30))


def _car(d, rng, cx, cy, s) -> None:
    body = hsv(rng.random(), rng.uniform(0, 0.9), rng.uniform(0.2, 0.95))
    d.rounded_rectangle([cx - s * 0.8, cy - s * 0.15, cx + s * 0.8, cy + s * 0.3], radius=s * 0.08, fill=body)
    d.polygon([(cx - s * 0.45, cy - s * 0.15), (cx - s * 0.25, cy - s * 0.45), (cx + s * 0.35, cy - s * 0.45),
               (cx + s * 0.5, cy - s * 0.15)], fill=darker(body, 0.85))
    d.polygon([(cx - s * 0.38, cy - s * 0.17), (cx - s * 0.22, cy - s * 0.4), (cx + s * 0.3, cy - s * 0.4),
               (cx + s * 0.42, cy - s * 0.17)], fill=(150, 190, 220))
    for wx in (-0.5, 0.5):
        d.ellipse([cx + s * wx - s * 0.16, cy + s * 0.15, cx + s * wx + s * 0.16, cy + s * 0.47], fill=(25, 25, 25))


_DRAWERS: dict[str, Callable] = {
    "weed_leaf": _leaf,
    "weed_bud": _bud,
    "joint": _joint,
    "pills": _pill_group,
    "syrup_cup": _syrup_cup,
    "syrup_bottle": _syrup_bottle,
    "vitamins": _vitamins,
    "green_food": _green_food,
    "houseplant": _houseplant,
    "purple_drink": _purple_drink,
    "money": _money,
    "screenshot": _screenshot,
    "selfie": _selfie,
    "landscape": _landscape,
    "food": _food,
    "pet": _pet,
    "party": _party,
    "car": _car,
}
# Scenes that fill the frame themselves (their background is part of the scene).
_FULL_FRAME = {"screenshot", "landscape", "party"}


# --------------------------------------------------------------------------- backgrounds and styles


FILTERS: tuple[str, ...] = ("none", "warm", "cool", "sepia", "mono", "vivid", "fade")
_FILTER_P = (0.3, 0.15, 0.15, 0.1, 0.05, 0.15, 0.1)
# Instagram's feed aspect ratios (width / height) from 4:5 portrait to 1.91:1 landscape, and
# how often each is chosen; every image, of every style, draws from the same list.
ASPECTS: tuple[float, ...] = (1.0, 0.8, 1.33, 1.5, 1.91)
ASPECT_P: tuple[float, ...] = (0.5, 0.25, 0.1, 0.07, 0.08)


class Look:
    """An account's visual habit: its favourite filter, background colour, table and framing.

    Drawn from the account's own seed, so every picture of the account shares it; each
    picture follows it with probability ``LOOK_KEPT`` (people do not always use one filter).
    """

    def __init__(self, seed: Sequence[int] | None):
        self.active = seed is not None  # None: no habit, every picture draws its own
        self.filter, self.hue, self.sat, self.val, self.table, self.framing = "none", 0.0, 0.0, 0.0, False, 1.0
        if seed is not None:
            r = np.random.default_rng(list(seed))
            self.filter = str(r.choice(FILTERS, p=_FILTER_P))
            self.hue, self.sat, self.val = r.random(), r.uniform(0.05, 0.5), r.uniform(0.2, 0.9)
            self.table = bool(r.random() < 0.4)
            self.framing = float(r.uniform(0.85, 1.15))


LOOK_KEPT = 0.75


def _light_and_texture(rng, n: int) -> np.ndarray:
    """(n, n) float field: light falling from one side plus a mottled surface (two octaves
    of smooth noise) -- the unevenness that makes a background look photographed."""
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    field = (xx * math.cos(ang) + yy * math.sin(ang)) * rng.uniform(10, 60)
    for cells, amp in ((int(rng.integers(3, 7)), rng.uniform(4, 16)), (int(rng.integers(12, 30)), rng.uniform(2, 9))):
        small = rng.normal(0, 1, (cells, cells)).astype(np.float32)
        field += np.asarray(Image.fromarray(small, "F").resize((n, n), Image.BICUBIC), np.float32) * amp
    return field


def _background_instagram(rng, W: int, look: Look) -> Image.Image:
    """A room or table: a textured base colour with light and mottling, clutter, soft focus.

    A background needs no fine detail: it is drawn at half the canvas size (its light and
    texture on a grid of a quarter) and enlarged once, which halves the cost of a picture.
    """
    full, W = W, max(8, W // 2)
    k = int(rng.integers(2, 7))
    own = look.active and rng.random() < LOOK_KEPT
    hue, sat, val = (look.hue + rng.normal(0, 0.03), look.sat, look.val) if own else (
        rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.2, 0.9))
    base = np.array(hsv(hue, sat, val), np.float32)
    n = max(8, W // 2)
    small = np.clip(base + rng.normal(0, rng.uniform(10, 45), (k, k, 3)), 0, 255).astype(np.uint8)
    grid = np.asarray(Image.fromarray(small).resize((n, n), Image.BILINEAR), np.float32)
    grid += _light_and_texture(rng, n)[..., None] * np.array(rng.uniform(0.8, 1.2, 3), np.float32)
    im = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8)).resize((W, W), Image.BILINEAR)
    d = Canvas(im)
    if (look.table if own else rng.random() < 0.4):  # a wooden table top
        y = W * rng.uniform(0.3, 0.6)
        wood = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.7))
        d.rectangle([0, y, W, W], fill=wood)
        for _ in range(6):
            yy = rng.uniform(y, W)
            d.line([(0, yy), (W, yy + rng.normal(0, 4))], fill=darker(wood, 0.85), width=1)
    for _ in range(int(rng.integers(1, 7))):  # clutter
        x, y = rng.uniform(0, W, 2)
        w, h = rng.uniform(W * 0.05, W * 0.35, 2)
        col = hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.1, 1.0))
        if rng.random() < 0.5:
            d.rectangle([x, y, x + w, y + h], fill=col)
        else:
            d.ellipse([x, y, x + w, y + h], fill=col)
    if rng.random() < 0.5:  # the background out of focus behind the subject
        im = im.filter(ImageFilter.BoxBlur(rng.uniform(0.5, 1.5)))
    return im.resize((full, full), Image.BILINEAR)


def _background_web(rng, W: int) -> Image.Image:
    g = int(rng.integers(236, 256))
    return Image.new("RGB", (W, W), (g, g, g))


def _watermark(rng, im: Image.Image) -> Image.Image:
    """A stock-photo watermark: translucent diagonal bars or a corner logo."""
    W, H = im.size
    over = im.copy()
    d = Canvas(over)
    col = (255, 255, 255) if rng.random() < 0.5 else (120, 120, 120)
    if rng.random() < 0.6:
        step = W * rng.uniform(0.2, 0.35)
        off = rng.uniform(0, step)
        for k in range(-4, 8):
            x0 = off + k * step
            d.line([(x0, H), (x0 + H * 0.6, 0)], fill=col, width=max(2, min(W, H) // 40))
        alpha = rng.uniform(0.25, 0.45)
    else:
        x, y = W * rng.uniform(0.55, 0.7), H * rng.uniform(0.85, 0.9)
        d.rectangle([x, y, W * 0.97, H * 0.97], fill=(40, 40, 40))
        d.rectangle([x + 3, y + 3, x + W * 0.1, H * 0.97 - 3], fill=(240, 240, 240))
        alpha = rng.uniform(0.5, 0.8)
    return Image.blend(im, over, float(alpha))


def _instagram_filter(rng, arr: np.ndarray, look: Look) -> np.ndarray:
    """A phone filter: channel gains, saturation, contrast, fade, vignette, sensor noise."""
    x = arr.astype(np.float32)
    own = look.active and rng.random() < LOOK_KEPT
    filt = look.filter if own else rng.choice(FILTERS, p=_FILTER_P)
    if filt == "warm":
        x *= np.array([1.1, 1.0, 0.85], np.float32)
    elif filt == "cool":
        x *= np.array([0.88, 1.0, 1.12], np.float32)
    elif filt == "sepia":
        lum = x.mean(-1, keepdims=True)
        x = 0.4 * x + 0.6 * lum * np.array([1.15, 1.0, 0.78], np.float32)
    elif filt == "mono":
        lum = x.mean(-1, keepdims=True)
        x = 0.8 * lum + 0.2 * x
    elif filt == "vivid":
        lum = x.mean(-1, keepdims=True)
        x = lum + (x - lum) * 1.4
    elif filt == "fade":
        x = x * 0.8 + 40
    x = (x - 128) * rng.uniform(0.8, 1.25) + 128 + rng.normal(0, 12)
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    x *= (1 - rng.uniform(0, 0.6) * (xx**2 + yy**2))[..., None]
    x += rng.normal(0, rng.uniform(2, 12), x.shape).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def out_size(size: int, aspect: float) -> tuple[int, int]:
    """(width, height) of an image whose shorter side is ``size`` and width/height ``aspect``."""
    return (max(size, round(size * aspect)), size) if aspect >= 1 else (size, max(size, round(size / aspect)))


def render(
    content: str,
    style: str,
    size: int,
    seed: Sequence[int],
    *,
    clutter: float = 0.5,
    menu: bool = False,
    aspect: float = 1.0,
    text: str | None = None,
    look: Sequence[int] | None = None,
    min_object: float = 0.0,
    drawers: Mapping[str, Callable] | None = None,
    full_frame: Collection[str] = (),
) -> np.ndarray:
    """Draw one image; returns uint8 (height, width, 3), the shorter side ``size``.

    Args:
      content: one of :data:`CONTENTS`.
      style: ``"instagram"`` (a phone photo) or ``"web"`` (a product or stock shot).
      size: the shorter side in pixels.
      seed: entropy for this image alone (e.g. ``(world_seed, stream, index)``).
      clutter: 0..1, how small and off-centre the object is and how busy the scene is
        (Instagram style only).
      menu: screenshots only: a dealer's price menu rather than a chat, note or food menu.
      aspect: width / height (Instagram allows 0.8 to 1.91).
      text: words drawn into the picture as a meme caption, or None.
      look: the poster's account seed (its :class:`Look`), or None for no habit.
      min_object: the object's smallest size as a share of the shorter side (Instagram style).
      drawers: other object drawers by name (the pretext set, :mod:`drugjax.synthetic.pretext`)
        in place of the world's; ``full_frame`` names those that fill the frame.
    """
    if drawers is None:
        drawers, full_frame = _DRAWERS, _FULL_FRAME
    if content not in drawers:
        raise ValueError(f"unknown image content {content!r}; expected one of {tuple(drawers)}")
    if style not in STYLES:
        raise ValueError(f"unknown image style {style!r}; expected one of {STYLES}")
    if not 0.5 <= aspect <= 2.0:
        raise ValueError(f"aspect must be between 0.5 and 2.0, got {aspect}")
    rng = np.random.default_rng(list(seed))
    habit = Look(look)
    if content == "screenshot":  # a screenshot is cropped to a square, not to the text's middle
        aspect = 1.0
    w_out, h_out = out_size(size, aspect)
    W = 2 * max(w_out, h_out)  # drawn at twice the size on a square canvas, cropped, reduced
    short = 2 * size
    insta = style == "instagram"
    # A share of web results are photos in real settings (news, forums) rather than
    # product shots: their background is a scene, but the object stays large and centred
    # and no phone filter is applied.
    web_photo = not insta and rng.random() < WEB_PHOTO_SHARE
    im = _background_instagram(rng, W, habit) if insta or web_photo else _background_web(rng, W)
    d = Canvas(im)
    drawer = drawers[content]
    kw = {"menu": menu} if content == "screenshot" else {}
    cx = cy = W / 2
    if insta:
        s = short * rng.uniform(0.55, 0.8) * habit.framing * (1 - 0.4 * clutter * rng.random())
        s = max(s, short * min_object)
        cx = W / 2 + rng.normal(0, short * 0.12 * (0.5 + clutter))
        cy = W / 2 + rng.normal(0, short * 0.12 * (0.5 + clutter))
        drawer(d, rng, cx, cy, s, **kw)
        if content not in full_frame and rng.random() < clutter:  # a second, unrelated object
            other = str(rng.choice(["food", "car", "pet", "money", "houseplant", "selfie"]))
            _DRAWERS[other](d, rng, rng.uniform(0, W), rng.uniform(0, W), short * rng.uniform(0.15, 0.3))
        if rng.random() < 0.3 * clutter:  # smoke or haze
            over = im.copy()
            od = Canvas(over)
            for _ in range(int(rng.integers(3, 8))):
                x, y, r = rng.uniform(0, W), rng.uniform(0, W), W * rng.uniform(0.08, 0.25)
                od.ellipse([x - r, y - r, x + r, y + r], fill=(210, 210, 215))
            im = Image.blend(im, over.filter(ImageFilter.BoxBlur(W // 20)), 0.35)
        soft = rng.uniform(0.3, 0.8) if rng.random() < 0.3 else 0.0  # camera shake, applied at the output size
    else:
        s = short * rng.uniform(0.65, 0.85)
        if content == "pills" and rng.random() < 0.35:  # a pill-identification chart
            for i in range(int(rng.integers(2, 5))):
                for j in range(int(rng.integers(2, 4))):
                    c, c2 = _pill_colour(rng)
                    x = W / 2 + (i - 1.5) * short * 0.25
                    y = W / 2 + (j - 1) * short * 0.3
                    _pill(d, rng, x, y, short * 0.14, str(rng.choice(PILL_SHAPES)), c, c2, ang=0.0)
        else:
            if not web_photo:  # the product shot's soft shadow
                d.ellipse([W / 2 - s * 0.5, W / 2 + s * 0.35, W / 2 + s * 0.5, W / 2 + s * 0.5], fill=(225, 225, 225))
            drawer(d, rng, W / 2 + rng.normal(0, short * 0.03), W / 2 + rng.normal(0, short * 0.03), s, **kw)
    # the frame: the requested aspect, centred on the object as far as the canvas allows
    x0 = int(np.clip(cx - w_out, 0, W - 2 * w_out))
    y0 = int(np.clip(cy - h_out, 0, W - 2 * h_out))
    im = im.crop((x0, y0, x0 + 2 * w_out, y0 + 2 * h_out))
    if text:
        _caption_on_image(im, rng, text)
    if not insta and rng.random() < 0.6:
        im = _watermark(rng, im)
    im = im.reduce(2)
    if insta and soft:
        im = im.filter(ImageFilter.GaussianBlur(soft))
    arr = np.asarray(im, dtype=np.uint8)
    if insta:
        arr = _instagram_filter(rng, arr, habit)
    else:
        arr = np.clip(arr.astype(np.int16) + rng.integers(-2, 3, arr.shape), 0, 255).astype(np.uint8)
    return arr


def repost(arr: np.ndarray, seed: Sequence[int]) -> np.ndarray:
    """A near-duplicate of a picture the account posted before: re-cropped and re-filtered.

    (Re-compression comes from saving it again at another JPEG quality.)
    """
    rng = np.random.default_rng(list(seed))
    h, w = arr.shape[:2]
    keep = rng.uniform(0.78, 0.95)
    cw, ch = max(8, int(w * keep)), max(8, int(h * keep))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = Image.fromarray(arr).crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
    x = np.asarray(im, np.float32) * np.array(rng.uniform(0.9, 1.1, 3), np.float32)
    x = (x - 128) * rng.uniform(0.9, 1.15) + 128 + rng.normal(0, 8)
    return np.clip(x, 0, 255).astype(np.uint8)


def save_jpeg(arr: np.ndarray, path, quality: int) -> None:
    """Write a baseline JPEG deterministically (no timestamps, no EXIF, fixed settings)."""
    Image.fromarray(arr).save(path, format="JPEG", quality=int(quality), optimize=False, progressive=False)
