"""Table 1 of the paper (post recognition) as data, written as Markdown, CSV and JSON.

Rows are the paper's methods, columns its metrics, each as mean ± std over the
cross-validation folds (a :class:`~drugjax.metrics.Summary` per row). The
paper's own numbers are kept here to print beside ours.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

from drugjax.metrics import METRICS, SUMMARY_METRICS, Summary, jsonable
from drugjax.runtime import atomic

TABLE1_METHODS = ("MLP", "MT MLP", "Tags only", "Caption only", "Combined", "Late fusion")

# Table 1 of Yang & Luo (2016) exactly as printed: accuracy, precision and recall in
# percent, F1 as a fraction. The text says AUC is reported, but the table prints none.
PAPER_TABLE1_AS_PRINTED: dict[str, tuple[float, float, float, float]] = {
    "MLP": (86.9, 80.3, 66.3, 0.72),
    "MT MLP": (87.2, 81.0, 66.7, 0.73),
    "Tags only": (82.2, 67.2, 62.0, 0.65),
    "Caption only": (81.7, 69.4, 53.7, 0.61),
    "Combined": (81.7, 63.6, 70.0, 0.67),
    "Late fusion": (88.1, 83.1, 68.1, 0.75),
}


def paper_table1() -> dict[str, dict[str, float]]:
    """The paper's Table 1 as fractions, like ours (AUC: NaN, the paper prints none)."""
    return {
        method: {"accuracy": round(acc / 100, 6), "precision": round(prec / 100, 6),
                 "recall": round(rec / 100, 6), "f1": f1, "auc": math.nan}
        for method, (acc, prec, rec, f1) in PAPER_TABLE1_AS_PRINTED.items()
    }


@dataclasses.dataclass(frozen=True)
class Table1:
    """Our Table 1: method name -> metrics over folds. Any subset of
    :data:`TABLE1_METHODS` (an evaluation without the image model has only the text
    rows); rows keep the paper's order whatever order they are given in."""

    rows: Mapping[str, Summary]

    def __post_init__(self) -> None:
        unknown = [m for m in self.rows if m not in TABLE1_METHODS]
        if unknown:
            raise ValueError(f"unknown Table 1 method(s) {unknown}; the rows are {TABLE1_METHODS}")
        ordered = {m: self.rows[m] for m in TABLE1_METHODS if m in self.rows}
        object.__setattr__(self, "rows", ordered)


def _percent(summary: Summary, name: str) -> str:
    mean, std = summary.mean.get(name, math.nan), summary.std.get(name, math.nan)
    return "n/a" if math.isnan(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _fraction(summary: Summary, name: str) -> str:
    mean, std = summary.mean.get(name, math.nan), summary.std.get(name, math.nan)
    return "n/a" if math.isnan(mean) else f"{mean:.2f} ± {std:.2f}"


def format_table1_markdown(table: Table1) -> str:
    """Table 1 as Markdown in the paper's units (percent, F1 and AUC as fractions), with
    the all-negative accuracy beside accuracy, the paper's numbers beside ours and each
    row's notes below."""
    lines = [
        "| Method | Accuracy (%) | All-negative (%) | Precision (%) | Recall (%) | F1 | AUC | Folds "
        "| Paper: acc / prec / rec / F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for method, summary in table.rows.items():
        paper = PAPER_TABLE1_AS_PRINTED[method]
        lines.append(
            f"| {method} | {_percent(summary, 'accuracy')} | {_percent(summary, 'all_negative_accuracy')} "
            f"| {_percent(summary, 'precision')} | {_percent(summary, 'recall')} | {_fraction(summary, 'f1')} "
            f"| {_fraction(summary, 'auc')} | {summary.n_folds} "
            f"| {paper[0]:.1f} / {paper[1]:.1f} / {paper[2]:.1f} / {paper[3]:.2f} |")
        notes += [f"- {method}: {note}" for note in summary.notes]
    text = "\n".join(lines) + "\n\nMean ± std over folds. All-negative: the accuracy of calling every post negative.\n"
    text += "The paper prints no AUC values in Table 1.\n"
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    return text


def _csv_header() -> list[str]:
    header = ["method", "n_folds"]
    for name in SUMMARY_METRICS:
        header += [f"{name}_mean", f"{name}_std"]
    return header + [f"paper_{name}" for name in METRICS] + ["notes"]


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def write_table1(table: Table1, out_dir: str | Path, notes: str = "") -> dict[str, Path]:
    """Write ``table1.md`` (``notes`` below the table), ``table1.csv`` and ``table1.json``
    into ``out_dir``, each atomically.

    CSV and JSON hold fractions at full precision (NaN: an empty cell / null) and the
    paper's numbers as fractions in ``paper_*`` columns / a ``paper`` object. Returns
    the paths by format.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paper = paper_table1()
    paths = {"md": out_dir / "table1.md", "csv": out_dir / "table1.csv", "json": out_dir / "table1.json"}
    atomic.write_text(paths["md"], "# Table 1: drug-related post recognition\n\n" + format_table1_markdown(table)
                      + notes)
    with atomic.replacing(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_csv_header())
        for method, summary in table.rows.items():
            row = [method, summary.n_folds]
            for name in SUMMARY_METRICS:
                row += [_csv_number(summary.mean.get(name, math.nan)), _csv_number(summary.std.get(name, math.nan))]
            row += [_csv_number(paper[method][name]) for name in METRICS]
            writer.writerow(row + ["\n".join(summary.notes)])  # csv quotes the newlines
    document = {
        "table": "Table 1: drug-related post recognition (mean and std over folds; fractions)",
        "rows": [{"method": method, **summary.to_dict(), "paper": jsonable(paper[method])}
                 for method, summary in table.rows.items()],
    }
    atomic.write_text(paths["json"], json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return paths


def read_table1(path: str | Path) -> Table1:
    """Read a ``table1.json`` or ``table1.csv`` written by :func:`write_table1`."""
    path = Path(path)
    if path.suffix == ".json":
        document = json.loads(path.read_text())
        return Table1({row["method"]: Summary.from_dict(row) for row in document["rows"]})
    if path.suffix == ".csv":
        rows = {}
        with path.open(newline="") as f:
            for record in csv.DictReader(f):
                def number(key: str) -> float:
                    return math.nan if record[key] == "" else float(record[key])

                rows[record["method"]] = Summary(
                    mean={name: number(f"{name}_mean") for name in SUMMARY_METRICS},
                    std={name: number(f"{name}_std") for name in SUMMARY_METRICS},
                    n_folds=int(record["n_folds"]),
                    notes=tuple(record["notes"].split("\n")) if record["notes"] else (),
                )
        return Table1(rows)
    raise ValueError(f"{path}: expected table1.json or table1.csv, got a '{path.suffix}' file")
