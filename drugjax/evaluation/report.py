"""``report.html``: one self-contained page of an evaluate run — Table 1, Table 2, their
notes and every figure, for reading or sending without the run directory.

Built from the files the run wrote (``table1.md``, ``fusion_weights.md``, ``table2.md``,
the PNGs), so the page shows exactly what the files say. Pictures are data URIs; a
Content-Security-Policy allows no script and no remote resource; all text is escaped
(table notes can quote data: account names, file names).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from drugjax.runtime import atomic

SECTIONS: tuple[str, ...] = ("table1.md", "fusion_weights.md", "table2.md")
FIGURES: tuple[str, ...] = ("roc.png", "precision_recall.png", "fusion_weights.png", "fig5a_drug_share.png",
                            "fig5b_hours.png", "fig5c_following_ratio.png", "fig5d_evidence.png")
_STYLE = ("body{font:14px sans-serif;max-width:1100px;margin:auto;padding:1em} table{border-collapse:collapse;"
          "margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 6px} img{max-width:48%;margin:4px}")


def markdown_to_html(text: str) -> str:
    """The subset of Markdown the run's .md files use: headings, pipe tables, bullets,
    paragraphs; ``**bold**`` and `code` marks are kept as text. Everything is escaped."""
    out, table, bullets = [], [], []

    def flush() -> None:
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|[\s|:-]*\|", r)]  # drop the |---| rule
            cells = [[html.escape(c.strip()) for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{c}</{'th' if i == 0 else 'td'}>" for c in row)
                + "</tr>" for i, row in enumerate(cells)) + "</table>")
            table.clear()
        if bullets:
            out.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            if bullets:
                flush()
            table.append(line)
            continue
        if line.startswith("- "):
            if table:
                flush()
            bullets.append(line[2:])
            continue
        flush()
        heading = re.match(r"(#{1,4}) (.*)", line)
        if heading:
            level = min(len(heading.group(1)) + 1, 5)  # the page's own title is the h1
            out.append(f"<h{level}>{html.escape(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def write_report(workdir: str | Path, title: str = "drugjax evaluation", sections: Sequence[str] = SECTIONS,
                 figures: Sequence[str] = FIGURES) -> Path:
    """Write ``workdir/report.html`` from the run's files that exist (missing ones are skipped)."""
    workdir = Path(workdir)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>Scores of accounts are for human review, never verdicts (docs/model-card.md).</p>"]
    for name in sections:
        if (workdir / name).is_file():
            parts.append(markdown_to_html((workdir / name).read_text(encoding="utf-8")))
    shown = [f for f in figures if (workdir / f).is_file()]
    if shown:
        parts.append("<h2>Figures</h2>")
        for name in shown:
            data = base64.b64encode((workdir / name).read_bytes()).decode("ascii")
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    path = workdir / "report.html"
    atomic.write_text(path, "\n".join(parts))
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
