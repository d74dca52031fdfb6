"""Tables 1 and 2 of the docs, regenerated from a real run on the synthetic paper world.

    python bench/paper_tables.py                 # runs python evaluate.py name=paper-tables, prints
    python bench/paper_tables.py --write-docs    # ... and writes the tables into the docs
    python bench/paper_tables.py --run DIR       # reads an evaluate.py run directory instead

docs/evaluation.md (Table 1) and docs/accounts.md (Table 2) hold the tables between
``<!-- paper-table1 begin/end -->`` and ``<!-- paper-table2 begin/end -->``, each under a
line naming the command, the commit, the date and the machine (CPU, cores, AVX-512): the
figures move in the second or third decimal between machines (the features' sums run in
another order with other vector widths), so a figure without its machine says too much.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import ROOT, cpu_name, write_docs_section  # noqa: E402

RUN_NAME = "paper-tables"


def machine() -> str:
    """``2-core AMD EPYC, AVX-512``: what decides the figures' last digits."""
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{os.cpu_count()}-core {cpu_name()}, {isa}"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + (" with uncommitted changes" if dirty else "")


def markdown_table(path: Path) -> list[str]:
    """The first markdown table of ``path``, its lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def lines_starting(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(prefixes)]


def heading(run: Path) -> str:
    seconds = json.loads((run / "run.json").read_text())["seconds"]
    return (f"Measured {dt.date.today():%Y-%m-%d} on a {machine()}, commit {commit()}: "
            f"`python bench/paper_tables.py --write-docs` (it runs `python evaluate.py name={RUN_NAME}`; "
            f"Table 1 took {seconds['total']:.0f} s, {seconds['data_and_features']:.0f} s of it data and features).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="an evaluate.py run directory on the paper world (default: run one)")
    parser.add_argument("--write-docs", action="store_true", help="write the tables into docs/")
    args = parser.parse_args(argv)
    run = args.run
    if run is None:
        subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"name={RUN_NAME}"], cwd=ROOT, check=True)
        run = ROOT / "runs" / "evaluate" / RUN_NAME
    head = heading(run)
    table1 = "\n".join([head, "", *markdown_table(run / "table1.md")])
    table2 = "\n".join([head, "", *markdown_table(run / "table2.md"), "",
                        *lines_starting(run / "table2.md", ("Experts agree", "LR-select kept"))])
    print(table1, table2, sep="\n\n")
    if args.write_docs:
        write_docs_section(ROOT / "docs" / "evaluation.md", "paper-table1", table1)
        write_docs_section(ROOT / "docs" / "accounts.md", "paper-table2", table2)
        print("wrote docs/evaluation.md and docs/accounts.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
