"""Self-contained HTML pages (report.html, search.html): Markdown tables and notes as
escaped HTML, pictures as data URIs, and a Content-Security-Policy that allows no
script and no remote resource — the text on them can quote data."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence

STYLE = ("body{font:14px sans-serif;max-width:1100px;margin:auto;padding:1em} table{border-collapse:collapse;"
         "margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 6px} img{max-width:48%;margin:4px}")


def page(title: str, parts: Sequence[str]) -> str:
    """A whole page: ``title`` as its h1, then ``parts`` (HTML, already escaped)."""
    head = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">",
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>"]
    return "\n".join([*head, *parts, "</body></html>"])


def png_image(alt: str, data: bytes) -> str:
    """An ``<img>`` of PNG bytes, embedded."""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode('ascii')}'>"


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
