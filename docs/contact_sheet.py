"""Draw docs/synthetic-contact-sheet.png: sample pictures of the synthetic world, by kind.

    python docs/contact_sheet.py [--seed 0] [--out docs/synthetic-contact-sheet.png]

Writes a ``small`` world to a temporary folder (about 20 s), picks the first pictures of
each kind in file order (so the sheet changes only when the generator does) and lays them
out in rows with their kind and shape printed above each tile.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from drugjax.data import load_accounts, load_posts, load_web
from drugjax.synthetic import draw
from drugjax.synthetic import world

TILE = 128  # tiles are letterboxed into TILE x TILE, so the aspect ratios stay visible
LABEL = 26
PER_ROW = 8


def _rows(root: Path) -> list[tuple[str, list[dict]]]:
    posts = load_posts(root, decode_images=False).records
    web = load_web(root, decode_images=False).records
    timeline = [p for a in load_accounts(root, decode_images=False).records for p in a["timeline"]]
    drugs = set(draw.DRUG_CONTENTS)
    confusers = set(draw.CONFUSER_CONTENTS)

    def first(recs, keep):
        return [r for r in recs if keep(r)][:PER_ROW]

    return [
        ("drug posts showing a drug", first(posts, lambda p: p["drug"] and p["synthetic_content"] in drugs)),
        ("drug posts showing no drug (menus, money, selfies)",
         first(posts, lambda p: p["drug"] and p["synthetic_content"] not in drugs)),
        ("innocent posts with a confuser", first(posts, lambda p: not p["drug"] and p["synthetic_content"] in confusers)),
        ("innocent everyday posts", first(posts, lambda p: not p["drug"] and p["synthetic_content"] not in drugs | confusers)),
        ("web positives (search results: phone photos and product shots)",
         first(web, lambda w: w["class"] != "negative")),
        ("web negatives (random Instagram pictures and stock shots)", first(web, lambda w: w["class"] == "negative")),
        ("timeline reposts: a dealer's earlier picture re-cropped and re-filtered",
         [r for p in first(timeline, lambda p: "synthetic_repost_of" in p)[: PER_ROW // 2]
          for r in (next(q for q in timeline if q["id"] == p["synthetic_repost_of"]), p)]),
    ]


def contact_sheet(root: Path) -> Image.Image:
    rows = _rows(root)
    font = ImageFont.load_default(size=11)
    head = ImageFont.load_default(size=13)
    row_h = 18 + TILE + LABEL
    sheet = Image.new("RGB", (PER_ROW * (TILE + 6) + 6, len(rows) * row_h + 6), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for i, (title, recs) in enumerate(rows):
        y = 6 + i * row_h
        d.text((6, y), title, fill=(0, 0, 0), font=head)
        for j, rec in enumerate(recs):
            x = 6 + j * (TILE + 6)
            with Image.open(root / rec["image"]) as im:
                w, h = im.size
                im = im.convert("RGB")
                im.thumbnail((TILE, TILE))
                sheet.paste(im, (x + (TILE - im.size[0]) // 2, y + 18 + (TILE - im.size[1]) // 2))
            d.text((x, y + 18 + TILE + 1), rec["synthetic_content"], fill=(60, 60, 60), font=font)
            d.text((x, y + 18 + TILE + 13), f"{w}x{h} {(root / rec['image']).stat().st_size // 1024} KB",
                   fill=(120, 120, 120), font=font)
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("synthetic-contact-sheet.png")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = world.generate(Path(tmp) / "world", preset="small", seed=args.seed)
        # 256 colours: a third of the bytes of full colour, no visible loss on noisy photos
        contact_sheet(root).quantize(256, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
