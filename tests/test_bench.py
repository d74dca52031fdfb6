"""The backbone benchmarks' machinery: the protocol of bench/backbone.py
(bench/protocol.py: load and other-process accounting, the UNDER LOAD verdict, docs
writes refused under load) and bench/gpu_backbone.py (the gradient path it measures, its
--smoke run). No test asserts on a time."""

from __future__ import annotations

import importlib.util
import os
import re
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


@pytest.mark.parametrize("script", ["backbone", "convolutions"])
def test_benchmark_refuses_to_write_docs_under_load(script, tmp_path, monkeypatch):
    bench = _load(script)
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    monkeypatch.setattr(bench, "DOCS", doc)
    monkeypatch.setattr(bench, "run", lambda args: ("| table |\n", True))
    with pytest.raises(SystemExit, match="under load"):
        bench.main(["--write-docs"])
    assert doc.read_text() == "# Benchmarks\n"
    bench.main(["--write-docs", "--allow-load"])
    assert "| table |" in doc.read_text()
    monkeypatch.setattr(bench, "run", lambda args: ("| idle table |\n", False))
    bench.main(["--write-docs"])
    assert "| idle table |" in doc.read_text() and "| table |" not in doc.read_text()


def test_convolution_inventory_is_the_models():
    # bench/convolutions.py times every convolution of the network: its list, unfused as
    # torchvision computes it, names each kernel of the model with its shape, once; fused,
    # each block's three 1x1 kernels of the block input become one.
    import jax

    from drugjax.models.weights import random_variables

    convolutions = _load("convolutions").convolutions
    kernels = {"/".join(k.key for k in path[:-2]): leaf.shape
               for path, leaf in jax.tree_util.tree_leaves_with_path(random_variables(1000)["params"])
               if path[-1].key == "kernel" and path[-2].key == "conv"}
    unfused = convolutions(224, fused=False)
    assert {name.replace(".", "/"): (k, k, cin, cout) for _, name, _, cin, cout, k, _, _ in unfused} == kernels
    sizes = {name: s for _, name, s, *_ in unfused}
    assert [sizes[n] for n in ("conv1", "conv3", "inception3a.branch1", "inception4a.branch1",
                               "inception5b.branch1")] == [224, 56, 28, 14, 7]
    fused = convolutions(224, fused=True)
    assert len(fused) == len(unfused) - 2 * 9
    one_by_one = [row for row in fused if row[1] == "inception3a.1x1"]
    assert one_by_one == [("inception 1x1 of the block input", "inception3a.1x1", 28, 192, 64 + 96 + 16, 1, 1, 0)]


@pytest.mark.slow  # an Inception-v1 step lowered twice; the GPU benchmark's own check
def test_gpu_benchmark_lowers_xla_gradients_for_gpus():
    # bench/gpu_backbone.py measures the gradients GPUs use: lowered for CUDA (from this
    # CPU-only machine, through jax.export) the step has XLA's select_and_scatter for each
    # of the 13 max pools; lowered for CPU, the hand-written gradients instead.
    from drugjax.models.weights import random_variables, to_torchvision

    gpu = _load("gpu_backbone")
    _, _, step_fn, example = gpu.drugjax_train_step("float32", 2, 64, to_torchvision(random_variables(1000)))
    assert gpu.gradient_path(step_fn, example, "cuda") == "XLA's own (13 select_and_scatter)"
    assert gpu.gradient_path(step_fn, example, "cpu").startswith("hand-written")


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_on_cpu():
    # The whole script at its --smoke size (two training-step compilations, ~1-2 minutes
    # on 2 cores); the PyTorch rows run only where torch is importable.
    import subprocess

    root = BENCH.parent
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, str(BENCH / "gpu_backbone.py"), "--smoke"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| 2 | float32 |" in out.stdout and "| 2 | bfloat16" in out.stdout
    assert "hand-written CPU gradients" in out.stdout


def test_paper_tables_copy_an_evaluate_run_into_the_docs_with_its_machine(tmp_path, monkeypatch):
    tables = _load("paper_tables")
    run = tmp_path / "run"
    run.mkdir()
    (run / "table1.md").write_text("# Table 1\n\n| Method | F1 |\n|---|---|\n| MLP | 0.62 |\n\nMean ± std.\n")
    (run / "table2.md").write_text("# Table 2\n\n| Method | F1 |\n|---|---|\n| LR | 0.63 |\n\n"
                                   "Experts agree on 92.7 % of accounts.\nLR-select kept exp1: P, R3.\n\n## This run\n")
    (run / "run.json").write_text('{"seconds": {"total": 93.2, "data_and_features": 12.0}}')
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("evaluation.md", "accounts.md"):
        (docs / name).write_text(f"# {name}\n\n<!-- paper-table1 begin -->\nold\n<!-- paper-table1 end -->\n"
                                 "<!-- paper-table2 begin -->\nold\n<!-- paper-table2 end -->\n")
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    assert tables.main(["--run", str(run), "--write-docs"]) == 0
    evaluation, accounts = (docs / "evaluation.md").read_text(), (docs / "accounts.md").read_text()
    assert "| MLP | 0.62 |" in evaluation and "old" in evaluation.split("paper-table1 end")[1]
    assert "| LR | 0.63 |" in accounts and "LR-select kept exp1: P, R3." in accounts and "## This run" not in accounts
    head = evaluation.split("<!-- paper-table1 begin -->\n")[1].splitlines()[0]
    assert head.startswith("Measured ") and "-core " in head and "commit " in head and "Table 1 took 93 s" in head


def test_soak_kills_train_py_and_finds_it_resumes_equal(tmp_path, capsys):
    """The short soak of the default set (issue 26): one trial with two kill moments
    (seed 1: SIGKILL at 85 % of the uninterrupted run's time, then at 27 % of the rerun's;
    a moment after the run has ended sends nothing), so that a regression in
    resuming shows in every test run within the suite's time budget (docs/testing.md);
    the slow set's soak runs every command."""
    soak = _load("soak")
    assert soak.main(["--trials", "1", "--seed", "1", "--keep", str(tmp_path), "--commands", "train"]) == 0
    out = capsys.readouterr().out
    # trials, kills, kill moments, resumed equal, refused, anything else: how many kills
    # land depends on the machine's speed (one that comes after the run ended is not sent)
    assert re.search(r"\| train.py heads, tiny world \| 1 \| \d+ / \d+ \| [^|]* \| 1 \| 0 \| 0 \|", out), out
    assert (tmp_path / "train-trial-1" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_soak_kills_every_command_and_finds_each_resumes_equal(tmp_path, capsys):
    """The soak over all seven commands, one trial each (issue 26; the figures of longer
    soaks are in docs/reliability.md)."""
    soak = _load("soak")
    assert soak.main(["--trials", "7", "--seed", "0", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("train.py heads", "train.py end to end", "evaluate.py", "train.py vmap sweep",
                "python -m drugjax.synthetic", "import-instaloader", "the TFDS build"):
        assert f"| {row}" in out


@pytest.mark.slow  # 0.1 s, but the default set is at its time budget (docs/testing.md)
def test_soak_reads_tensorboard_as_tensorboard_shows_it(tmp_path):
    """The soak's check of a resumed run's TensorBoard events: a restart's purge drops the
    killed attempt's points from its step on, a point written twice without one shows
    twice, a record cut short at a file's end is left out, a damaged one is an error."""
    from tensorboardX import SummaryWriter

    soak = _load("soak")
    logdir = tmp_path / "tensorboard"

    def attempt(suffix, steps, purge_step=None):
        writer = SummaryWriter(str(logdir), purge_step=purge_step, filename_suffix=suffix)
        for step in steps:
            writer.add_scalar("train/loss", 1.0, step)
        writer.close()

    attempt(".1", [1, 2, 3, 4], purge_step=1)  # killed after step 4, its checkpoint at step 2
    attempt(".2", [3, 4, 5], purge_step=3)  # the rerun: purges from step 3 on
    assert soak.tensorboard_points(tmp_path) == [("train/loss", step) for step in (1, 2, 3, 4, 5)]
    attempt(".3", [5])  # no purge: TensorBoard shows step 5 twice
    assert soak.tensorboard_points(tmp_path).count(("train/loss", 5)) == 2

    last = sorted(logdir.iterdir())[-1]
    data = last.read_bytes()
    last.write_bytes(data[:-7])  # the last record cut short by a kill: left out
    assert soak.tensorboard_points(tmp_path).count(("train/loss", 5)) == 1
    damaged = bytearray(data)
    damaged[-6] ^= 0xFF  # inside the last record's data
    last.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="damaged record"):
        soak.tensorboard_points(tmp_path)
