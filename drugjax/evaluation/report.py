"""``report.html``: one self-contained page of an evaluate run — Table 1, Table 2, their
notes and every figure, for reading or sending without the run directory.

Built from the files the run wrote (``table1.md``, ``fusion_weights.md``, ``table2.md``,
the PNGs), so the page shows exactly what the files say. Pictures are data URIs; a
Content-Security-Policy allows no script and no remote resource; all text is escaped
(table notes can quote data: account names, file names).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from drugjax.runtime import atomic
from drugjax.runtime.html_page import markdown_to_html, page, png_image

SECTIONS: tuple[str, ...] = ("table1.md", "fusion_weights.md", "table2.md")
FIGURES: tuple[str, ...] = ("roc.png", "precision_recall.png", "fusion_weights.png", "fig5a_drug_share.png",
                            "fig5b_hours.png", "fig5c_following_ratio.png", "fig5d_evidence.png")


def write_report(workdir: str | Path, title: str = "drugjax evaluation", sections: Sequence[str] = SECTIONS,
                 figures: Sequence[str] = FIGURES) -> Path:
    """Write ``workdir/report.html`` from the run's files that exist (missing ones are skipped)."""
    workdir = Path(workdir)
    parts = ["<p>Scores of accounts are for human review, never verdicts (docs/model-card.md).</p>"]
    for name in sections:
        if (workdir / name).is_file():
            parts.append(markdown_to_html((workdir / name).read_text(encoding="utf-8")))
    shown = [f for f in figures if (workdir / f).is_file()]
    if shown:
        parts.append("<h2>Figures</h2>")
        parts += [png_image(name, (workdir / name).read_bytes()) for name in shown]
    path = workdir / "report.html"
    atomic.write_text(path, page(title, parts))
    return path


MODEL_CARD = Path(__file__).resolve().parents[2] / "docs" / "model-card.md"


def write_model_card(workdir: str | Path, card: str | Path = MODEL_CARD,
                     sections: Sequence[str] = ("table1.md", "table2.md")) -> Path | None:
    """Write ``workdir/model-card.md``: the project's model card followed by this run's
    Table 1 and Table 2, so the caveats travel with the numbers they qualify. Returns
    None (and writes nothing) when the card is not there (an install without docs/)."""
    card, workdir = Path(card), Path(workdir)
    if not card.is_file():
        return None
    parts = [card.read_text(encoding="utf-8").rstrip(), "", "## This run", "",
             f"The figures of the run in `{workdir.name}`, as its files hold them.", ""]
    for name in sections:
        if (workdir / name).is_file():
            text = (workdir / name).read_text(encoding="utf-8")
            parts += [re.sub(r"^#+ ", "### ", text, flags=re.M).rstrip(), ""]  # under "This run"
    path = workdir / "model-card.md"
    atomic.write_text(path, "\n".join(parts) + "\n")
    return path
