"""The benchmark protocol of bench/backbone.py (bench/protocol.py): load and
other-process accounting, the UNDER LOAD verdict, and docs writes refused under load.
Nothing here times anything."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


protocol = _load("protocol")


def test_cpu_times_sees_this_process():
    times = protocol.cpu_times()
    if not times:
        pytest.skip("no /proc here")
    cmd, cpu = times[os.getpid()]
    assert cpu > 0 and "python" in cmd


def test_others_busy_excludes_the_benchmark_and_sorts():
    before = {1: ("a", 1.0), 2: ("b", 5.0), 3: ("me", 0.0)}
    after = {1: ("a", 3.0), 2: ("b", 5.5), 3: ("me", 9.0), 4: ("new", 0.2)}
    used = protocol.others_busy(before, after, exclude={3})
    assert [(pid, round(cpu, 3)) for cpu, pid, _ in used] == [(1, 2.0), (2, 0.5), (4, 0.2)]


def test_verdict_under_load():
    cores = os.cpu_count() or 1
    w = protocol.Watch(load_before=(0.5, 0.5, 0.5), wall=100.0, others=[(1.0, 7, "x")])
    assert not w.under_load and w.verdict().startswith("idle")
    w.load_before = (1.5, 0.5, 0.5)
    assert w.under_load and "UNDER LOAD" in w.verdict()
    w.load_before = (0.2, 0.2, 0.2)
    w.others = [(0.2 * 100.0 * cores, 7, "busy job")]  # 20% of the machine
    assert w.under_load
    assert any("busy job" in line for line in w.lines())


def test_write_docs_section_replaces_between_markers(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text("# B\n\nintro\n")
    protocol.write_docs_section(doc, "x", "first")
    protocol.write_docs_section(doc, "x", "second\n")
    text = doc.read_text()
    assert text.startswith("# B\n\nintro\n") and "second" in text and "first" not in text
    assert text.count("<!-- x begin -->") == 1


def test_backbone_refuses_to_write_docs_under_load(tmp_path, monkeypatch):
    backbone = _load("backbone")
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    monkeypatch.setattr(backbone, "DOCS", doc)
    monkeypatch.setattr(backbone, "run", lambda args: ("| table |\n", True))
    with pytest.raises(SystemExit, match="under load"):
        backbone.main(["--write-docs"])
    assert doc.read_text() == "# Benchmarks\n"
    backbone.main(["--write-docs", "--allow-load"])
    assert "| table |" in doc.read_text()
    monkeypatch.setattr(backbone, "run", lambda args: ("| idle table |\n", False))
    backbone.main(["--write-docs"])
    assert "| idle table |" in doc.read_text() and "| table |" not in doc.read_text()
