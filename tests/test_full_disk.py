"""A full disk (issue 26): each write that matters runs out of space in a child process
and the command ends with one ``error:`` line saying the disk is full and where, no
traceback; what was written before is intact, and the same command with space again
resumes and finishes.

The child runs under ``RLIMIT_FSIZE``: a write past the limit fails with EFBIG, as one
on a full disk fails with ENOSPC (both are a full disk to drugjax). The child ignores
SIGXFSZ, which would otherwise kill it at that write. Each limit lets every file before
the target write through and stops the target (sizes measured on the tiny world at 64 px,
written next to each limit).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a dozen train.py, evaluate.py and generator processes

# train.py on the tiny world's cached features, with a constant learning rate so that a
# finished run may be continued with more steps (the checkpoint test does).
TRAIN = ["experiment=paper_mtl", "data.preset=tiny", "data.image_size=64", "model.hidden=[64,64]",
         "data.batch_size=16", "checkpoint_every=20", "eval_every=20", "log_every=10", "progress=false",
         "tensorboard=false", "optim.schedule=constant", "optim.warmup_steps=0"]
EVALUATE = ["data.preset=tiny", "data.image_size=16", "model.backbone.name=tiny", "model.hidden=[16,16]",
            "image.steps=6", "data.batch_size=8", "image.chunk_steps=3", "data.eval_batch_size=8", "progress=false"]
# Sets the limit, ignores SIGXFSZ (so the write fails with EFBIG instead of killing the
# process) and becomes the command.
LIMITED = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
           "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


def run(args: list, data_dir: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` with ``DRUGJAX_DATA_DIR=data_dir``, under a file-size limit of
    ``limit`` bytes when given."""
    prefix = [sys.executable] if limit is None else [sys.executable, "-c", LIMITED, str(limit)]
    env = dict(os.environ, DRUGJAX_DATA_DIR=str(data_dir), JAX_PLATFORMS="cpu")
    return subprocess.run([*prefix, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def assert_one_disk_full_line(done: subprocess.CompletedProcess, path: str) -> str:
    """The command failed with exactly one ``error:`` line, saying the disk is full and
    naming ``path``, and printed no traceback."""
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "the disk is full" in errors[0] and path in errors[0], errors[0]
    print(errors[0])  # shown by pytest -rP
    return errors[0]


def sha256_of_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders of an unfinished write under ``folder`` (ours, orbax's,
    tfds's)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if any(mark in p.name for mark in ("tmp", "partial", "incomplete")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data folder holding the tiny world, its datasets and its features, and a run
    directory with a finished 20-step run (checkpoint 20)."""
    base = tmp_path_factory.mktemp("full-disk")
    data, workdir = base / "data", base / "run"
    done = run(["train.py", *TRAIN, "steps=20", f"workdir={workdir}"], data)
    assert done.returncode == 0, done.stderr[-3000:]
    return data, workdir


def test_a_checkpoint_write_on_a_full_disk_keeps_the_last_one_and_the_run_resumes(trained):
    data, workdir = trained
    before = sha256_of_tree(workdir / "checkpoints" / "20")
    # orbax spreads the checkpoint's arrays over one or more files, each holding at least
    # one of the 262 kB arrays of the first layer (1024 x 64) and its optimiser state;
    # everything train.py writes before them (metrics.jsonl, the run's record, the lock,
    # orbax's metadata) is under 25 kB.
    full = run(["train.py", *TRAIN, "steps=40", f"workdir={workdir}"], data, limit=150_000)
    line = assert_one_disk_full_line(full, str(workdir / "checkpoints"))
    assert "step 20" in line  # the last good checkpoint, named
    assert sha256_of_tree(workdir / "checkpoints" / "20") == before

    again = run(["train.py", *TRAIN, "steps=40", f"workdir={workdir}"], data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout and "at step 20" in again.stdout
    assert json.loads((workdir / "results.json").read_text())["step"] == 40
    assert leftovers(workdir / "checkpoints") == []


def test_a_feature_cache_write_on_a_full_disk_leaves_the_cache_as_it_was(trained, tmp_path):
    data, _ = trained
    cache = data / "features"
    before = sha256_of_tree(cache)
    # Features without the mirror images' average (paper_mtl averages them) are a new
    # cache entry: 780 kB, the one file over the limit (the world's files and its
    # datasets exist; nothing else is written before it).
    flipped = ["model.backbone.flip_average=false", "steps=2"]
    full = run(["train.py", *TRAIN, *flipped, f"workdir={tmp_path / 'run'}"], data, limit=500_000)
    assert_one_disk_full_line(full, str(cache / "features-"))
    assert sha256_of_tree(cache) == before  # the earlier entry intact, no part of the new one left

    again = run(["train.py", *TRAIN, *flipped, f"workdir={tmp_path / 'run'}"], data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(sha256_of_tree(cache)) == len(before) + 1 and leftovers(cache) == []


def test_a_world_build_on_a_full_disk_leaves_the_earlier_world_and_no_partial_one(tmp_path):
    out = tmp_path / "world"
    build = ["-m", "drugjax.synthetic", out, "--preset", "tiny", "--image-size", "64"]
    first = run([*build, "--seed", "0"], tmp_path / "data")
    assert first.returncode == 0, first.stderr[-3000:]
    before = sha256_of_tree(out)
    # Pictures are at most 5 kB, posts.jsonl 14 kB.
    full = run([*build, "--seed", "1"], tmp_path / "data", limit=10_000)
    assert_one_disk_full_line(full, str(out))
    assert sha256_of_tree(out) == before and leftovers(tmp_path) == []  # the seed-0 world, whole

    again = run([*build, "--seed", "1"], tmp_path / "data")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "world.json").read_text())["seed"] == 1


def test_a_first_use_world_build_on_a_full_disk_leaves_nothing_taken_for_finished(tmp_path):
    data = tmp_path / "data"
    where = ["-m", "drugjax.data", "where", "--preset", "tiny", "--image-size", "64"]
    full = run(where, data, limit=10_000)
    assert_one_disk_full_line(full, str(data / "synthetic"))
    assert not list((data / "synthetic").glob("*/.complete")) and leftovers(data) == []

    again = run(where, data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (Path(again.stdout.strip()) / ".complete").is_file()


def test_a_dataset_build_on_a_full_disk_leaves_no_dataset_taken_for_finished(tmp_path):
    data = tmp_path / "data"
    # The posts' array_record shard is 196 kB; the world's files, written first, are at
    # most 15 kB.
    full = run(["train.py", *TRAIN, "steps=2", f"workdir={tmp_path / 'run'}"], data, limit=150_000)
    assert_one_disk_full_line(full, f"the posts dataset into {data / 'tfds'}")
    assert not list((data / "tfds").rglob("dataset_info.json")) and leftovers(data) == []

    again = run(["train.py", *TRAIN, "steps=2", f"workdir={tmp_path / 'run'}"], data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((data / "tfds").rglob("dataset_info.json"))) == 3  # posts, web, accounts


def test_evaluate_outputs_on_a_full_disk_are_whole_or_absent_and_the_rerun_finishes(trained, tmp_path):
    data, _ = trained
    workdir = tmp_path / "evaluate"
    # report.html (430 kB, the pictures inline) is the one output over the limit; the
    # others, the 16 px world and its features are under 75 kB each.
    full = run(["evaluate.py", *EVALUATE, f"workdir={workdir}"], data, limit=150_000)
    assert_one_disk_full_line(full, str(workdir / "report.html"))
    assert not (workdir / "report.html").exists() and leftovers(workdir) == []

    again = run(["evaluate.py", *EVALUATE, f"workdir={workdir}"], data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (workdir / "report.html").stat().st_size > 150_000 and leftovers(workdir) == []


def test_a_search_whose_study_cannot_be_written_says_so_and_goes_on_from_its_last_trial(trained, tmp_path):
    data, _ = trained
    workdir = tmp_path / "search"
    # Widths of 4 on the 1,024-d pool keep the sweep engine's chunk saves at ~30 kB; the
    # study's database starts at 110 kB and passes the limit after some 30 trials. SQLite
    # says a file-size limit as "disk I/O error" (a full disk as "database or disk is full").
    search = ["experiment=search", "data.preset=tiny", "data.image_size=64", "model.hidden=[4,4]",
              "search.space.hidden.choices=[[4,4]]", "model.backbone.pool_layers=[inception5b]", "steps=20",
              "data.batch_size=16", "search.batch=2", "progress=false", "tensorboard=false", f"workdir={workdir}"]
    warm = run(["train.py", *search, "search.trials=1", f"workdir={tmp_path / 'features'}"], data)
    assert warm.returncode == 0, warm.stderr[-3000:]  # the features cached, under no limit

    full = run(["train.py", *search, "search.trials=60"], data, limit=140_000)
    assert full.returncode != 0 and "Traceback" not in full.stderr, full.stderr[-3000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"writing the study {workdir / 'search.db'} failed" in errors[0], full.stderr[-3000:]

    again = run(["train.py", *search, "search.trials=60"], data)
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads((workdir / "search.json").read_text())
    assert result["trials"] == 60 and result["failed"] <= 1  # at most the trial being asked, told failed
