"""Faults on purpose: kill a command at random moments, run it again, compare with a run
that was never interrupted.

    python bench/soak.py [--trials N] [--seed S] [--seconds BUDGET] [--keep DIR] [--commands A,B]
                         [--no-compilation-cache]

The commands (``--commands``; all by default, trial i goes to the (i mod n)-th):

* ``train``: ``train.py`` on cached features (the paper's MT MLP heads, tiny world);
* ``finetune``: ``train.py experiment=finetune`` end to end from images (Inception-v1,
  BatchNorm and the heads, all trained) at 64 px on the tiny world: 8 steps of 8 images,
  a checkpoint every 2 steps, evaluation at steps 4 and 8;
* ``evaluate``: ``evaluate.py`` (Table 1 and 2 on the tiny world, tiny backbone);
* ``sweep``: ``train.py experiment=ablation_relation_weight``, small (3 relation weights
  x 2 folds in one vmapped program, 60 steps, tiny world);
* ``world``: ``python -m drugjax.synthetic`` (the tiny world at 64 px);
* ``import``: ``python -m drugjax.data import-instaloader`` adding two Instaloader
  folders to a ROOT that holds an earlier import (tests/instaloader_support.py writes
  them, with Instaloader's own code);
* ``tfds``: the TFDS build that train.py and evaluate.py start with, of a ROOT (the small
  world at 64 px, written once): the three datasets (posts, web, accounts) into a fresh
  data folder.

Every child process gets JAX's persistent compilation cache in the soak's own folder
(``<base>/xla-cache``, as tests/conftest.py gives the test suite one), so only the first
reference run of each command compiles; without it (``--no-compilation-cache``) each
finetune process compiles Inception-v1 anew (docs/reliability.md has both trial times).
A kill that cuts a cache entry short (JAX writes entries in place) would make every later
process warn and compile that program again: such entries are removed after each kill,
and counted.

For each trial (its own seed, printed, so a failing trial can be replayed with
``--seed S --trials 1 --commands C``): start the command on a fresh copy of its input,
send SIGKILL (or, in a third of the kills, SIGTERM) at a moment drawn uniformly from the
uninterrupted run's wall time, then run the same command again, killing it once more in
half of the trials, until it finishes. (A run that finishes before its moment comes is
not killed; the kill is not counted, and a trial without any says "no kill".) The outcome is

* **resumed equal**: the command's outputs are those of the uninterrupted run (train and
  finetune: the final parameters bitwise, BatchNorm statistics included; metrics.jsonl
  holds its (step, split) pairs, each once, besides them only the train line a SIGTERM
  stop writes at the step it stopped at; the TensorBoard events read back, as TensorBoard
  shows them, the same (tag, step) points, each once, with the same exception;
  evaluate: table1.csv, table2.csv and predictions.csv byte for byte; sweep: ablation.csv
  byte for byte; world: every file
  byte for byte; import: every file of the ROOT byte for byte, and it validates; tfds:
  every example of each dataset as TFDS reads it back, and its JSON files, equal, and no
  killed build's ``incomplete.*`` folder left), and no kill left an output that looks
  finished and is not (evaluate's CSV files, ablation.csv, the world's folder and each
  dataset a later run would reuse are checked after each kill);
* **refused with a clear message**: a rerun ended with one ``error:`` line and no traceback;
* **anything else**, with what: different outputs, a duplicated or missing step, a
  traceback, a rerun that never finishes. The script then exits 1.

Hidden temporary files of a write that a SIGKILL cut short (``.NAME.*.tmp``, orbax's
``*.orbax-checkpoint-tmp``) are not outputs: nothing reads them as finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN_HEADS = ["experiment=paper_mtl", "data.preset=tiny", "data.image_size=64", "model.hidden=[16,16]",
               "data.batch_size=16", "steps=120", "checkpoint_every=20", "eval_every=40", "log_every=10",
               "progress=false", "tensorboard=true"]
# End to end from images (Inception-v1 and the heads, BatchNorm statistics included), as
# small as still saves and resumes mid-run: 4 checkpoints, 2 evaluations, 8 steps of 8 images.
FINETUNE = ["experiment=finetune", "data.preset=tiny", "data.image_size=64", "data.batch_size=8",
            "data.eval_batch_size=32", "steps=8", "checkpoint_every=2", "eval_every=4", "log_every=2",
            "progress=false", "tensorboard=true"]
# Table 1 on five folds and Table 2 on two (the tiny world has two dealers by expert 1).
EVALUATE_TINY = ["data.preset=tiny", "data.image_size=16", "model.backbone.name=tiny", "model.hidden=[16,16]",
                 "image.steps=6", "data.batch_size=8", "image.chunk_steps=3", "data.eval_batch_size=8",
                 "dealers.num_folds=2", "progress=false"]
EVALUATE_OUTPUTS = ("table1.csv", "table2.csv", "predictions.csv")
# The relation-weight ablation, small: 3 weights x 2 folds in one vmapped program.
SWEEP = ["experiment=ablation_relation_weight", "data.preset=tiny", "data.image_size=64", "data.batch_size=16",
         "steps=60", "sweep.relation_weights=[0,0.5,1]", "sweep.folds=[0,1]", "sweep.seeds=[0]"]
WORLD = ["--preset", "tiny", "--image-size", "64", "--seed", "0"]
RERUN_LIMIT = 5  # reruns of one trial before it counts as "never finishes"
OUTCOMES = ("resumed equal", "refused with a clear message", "anything else")


@dataclass
class Outcome:
    kind: str  # one of OUTCOMES
    what: str = ""
    kills: list[tuple[str, float]] = field(default_factory=list)  # (signal, share of the reference wall time)


def launch(cmd: list[str], env: dict, kill_after: float | None = None, sig: int = signal.SIGKILL
           ) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``python CMD``; with ``kill_after``, send ``sig`` after that many seconds.
    Returns what it printed and whether the signal was sent (False: it finished first)."""
    cmd = [sys.executable, *map(str, cmd)]
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=kill_after)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err), False
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
        if "JAX_COMPILATION_CACHE_DIR" in env:
            drop_cut_cache_entries(Path(env["JAX_COMPILATION_CACHE_DIR"]), since=started)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err), True


CUT_CACHE_ENTRIES: list[str] = []  # compilation-cache entries a kill cut short (removed)


def drop_cut_cache_entries(cache: Path, since: float) -> None:
    """Remove the compilation-cache entries a kill cut short. JAX writes an entry in place
    and never replaces one that exists: a cut entry only warns ("Error reading persistent
    compilation cache entry") and makes every later process compile that program anew,
    so the soak's later kill moments, drawn from a run that did not compile, would land
    in compilations. (drugjax itself turns no compilation cache on.) Only the entries
    written since ``since`` (the killed process's start) are looked at."""
    from jax._src.compilation_cache import decompress_executable

    for entry in sorted(cache.glob("*-cache")):
        if entry.stat().st_mtime < since - 1:
            continue
        try:
            decompress_executable(entry.read_bytes())
        except Exception:  # zlib's or zstd's error for a stream cut short
            entry.unlink()
            CUT_CACHE_ENTRIES.append(entry.name)
            print(f"a kill cut the compilation-cache entry {entry.name} short; removed", flush=True)


def timed(cmd: list[str], env: dict) -> float:
    """The wall time of an uninterrupted run of ``cmd``, which must succeed."""
    t0 = time.monotonic()
    done, _ = launch(cmd, env)
    if done.returncode != 0:
        raise SystemExit(f"the uninterrupted run of {' '.join(map(str, cmd))} failed:\n{done.stderr[-2000:]}")
    return time.monotonic() - t0


def kill_and_rerun(rng: random.Random, outcome: Outcome, wall: float, start: Callable,
                   after_stop: Callable[[subprocess.CompletedProcess], str | None] = lambda done: None
                   ) -> subprocess.CompletedProcess | Outcome:
    """Start the command, kill it once or twice at random moments, run it again until it
    finishes. ``start(kill_after, sig)`` runs it once; ``after_stop(done)`` looks at what
    a stopped attempt left and returns a problem (or None). Returns the finished run, or
    the outcome when it did not end well."""
    kills = 1 + (rng.random() < 0.5)
    for attempt in range(kills + RERUN_LIMIT):
        if attempt < kills:
            share = rng.uniform(0.02, 1.0)
            sig = signal.SIGTERM if rng.random() < 1 / 3 else signal.SIGKILL
            done, killed = start(share * wall, sig)
            if killed:  # not when the command finished before its moment came
                outcome.kills.append((signal.Signals(sig).name, share))
        else:
            done, killed = start(None, signal.SIGKILL)
        text = done.stdout + done.stderr
        if "Traceback" in text:
            return Outcome("anything else", f"a traceback: {done.stderr.strip().splitlines()[-1]}", outcome.kills)
        stopped = killed or "stopped by SIGTERM at step" in done.stdout
        if stopped:
            problem = after_stop(done)
            if problem:
                return Outcome("anything else", problem, outcome.kills)
            continue  # killed, or stopped cleanly at a checkpoint: run again
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            if len(errors) == 1:
                return Outcome("refused with a clear message", errors[0], outcome.kills)
            return Outcome("anything else", f"exit {done.returncode}: {done.stderr.strip()[-300:]}", outcome.kills)
        return done
    return Outcome("anything else", f"not finished after {RERUN_LIMIT} reruns", outcome.kills)


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path, leaving out the hidden
    temporary files of writes a SIGKILL cut short (nothing reads them as finished)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not _temporary(p, folder)}


def _temporary(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") and ".tmp" in part for part in path.relative_to(folder).parts)


# --------------------------------------------------------------------------- train.py
def tensorboard_points(workdir: Path) -> list[tuple[str, int]]:
    """The (tag, step) of every scalar TensorBoard shows for the run, in the order written.

    The event files are read as TensorBoard reads them: in the order of their names, each
    record's checksums checked (a damaged one raises ValueError), a record cut short at a
    file's end by a kill left out, and a resumed run's restart honoured (tensorboardX
    writes a SessionLog START at ``purge_step`` when a run resumes; TensorBoard then
    drops every point from that step on)."""
    from tensorboardX.proto.event_pb2 import SessionLog

    points: list[tuple[str, int]] = []
    for path in sorted((workdir / "tensorboard").glob("events.out.tfevents.*")):
        for event in _events(path):
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                points = [(tag, step) for tag, step in points if step < event.step]
            points.extend((value.tag, event.step) for value in event.summary.value)
    return points


def _events(path: Path):
    """The events of one file: TFRecord framing (length, its masked CRC-32C, the data, its
    masked CRC-32C), as tensorboardX writes it."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    data = path.read_bytes()
    at = 0
    while at + 12 <= len(data):
        header, (header_crc,) = data[at:at + 8], struct.unpack("<I", data[at + 8:at + 12])
        if masked_crc32c(header) != header_crc:
            raise ValueError(f"{path}: a damaged record header at byte {at}")
        (length,) = struct.unpack("<Q", header)
        end = at + 12 + length + 4
        if end > len(data):
            return  # the record a kill cut short: TensorBoard waits for the rest of it
        body, (body_crc,) = data[at + 12:end - 4], struct.unpack("<I", data[end - 4:end])
        if masked_crc32c(body) != body_crc:
            raise ValueError(f"{path}: a damaged record at byte {at}")
        yield Event.FromString(body)
        at = end


def final_state(workdir: Path) -> tuple[list[np.ndarray], list[tuple[int, str]], list[tuple[str, int]]]:
    """The final parameters (BatchNorm statistics included: every collection of the
    checkpoint's variables), metrics.jsonl's (step, split) pairs and TensorBoard's points."""
    from drugjax.training.checkpoint import read_params

    import jax

    params = [np.asarray(a) for a in jax.tree.leaves(read_params(workdir))]
    logged = [(r["step"], r["split"]) for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())]
    return params, logged, tensorboard_points(workdir)


def reference_train(args: list[str], name: str, base: Path, env: dict) -> tuple[tuple, float]:
    """The uninterrupted run's final state, and its wall time once the world, the
    features and the compiled programs exist (the first run makes them)."""
    timed(["train.py", *args, f"workdir={base / f'{name}-reference'}"], env)
    wall = timed(["train.py", *args, f"workdir={base / f'{name}-timing'}"], env)
    return final_state(base / f"{name}-reference"), wall


def trial_train(args: list[str], rng: random.Random, reference: tuple, wall: float, env: dict,
                workdir: Path) -> Outcome:
    outcome = Outcome("")
    stopped_at: set[int] = set()  # steps a SIGTERM stopped at

    def start(kill_after, sig):
        return launch(["train.py", *args, f"workdir={workdir}"], env, kill_after, sig)

    def after_stop(done):
        stop = re.search(r"stopped by SIGTERM at step (\d+)", done.stdout)
        if stop:
            stopped_at.add(int(stop.group(1)))

    done = kill_and_rerun(rng, outcome, wall, start, after_stop)
    if isinstance(done, Outcome):
        return done
    try:
        params, logged, shown = final_state(workdir)
    except ValueError as e:  # a damaged TensorBoard record
        return Outcome("anything else", f"TensorBoard events unreadable: {e}", outcome.kills)
    want_params, want_logged, want_shown = reference
    extra = set(logged) - set(want_logged)
    if (len(logged) != len(set(logged)) or not set(want_logged) <= set(logged)
            or any(split != "train" or step not in stopped_at for step, split in extra)):
        return Outcome("anything else", "metrics.jsonl differs from the uninterrupted run's "
                       f"({len(logged)} lines, {len(set(logged))} distinct)", outcome.kills)
    extra = set(shown) - set(want_shown)
    if (len(shown) != len(set(shown)) or not set(want_shown) <= set(shown)
            or any(not tag.startswith("train/") or step not in stopped_at for tag, step in extra)):
        twice = sorted({point for point in shown if shown.count(point) > 1})
        return Outcome("anything else", "TensorBoard shows other points than the uninterrupted run's "
                       f"({len(shown)} points, {len(set(shown))} distinct; twice: {twice[:3]})", outcome.kills)
    if len(params) != len(want_params) or any(not np.array_equal(a, b) for a, b in zip(params, want_params)):
        return Outcome("anything else", "final parameters differ from the uninterrupted run's", outcome.kills)
    return Outcome("resumed equal", "", outcome.kills)


# --------------------------------------------------------- evaluate.py and the vmap sweep
def reference_files(command: list[str], outputs: tuple[str, ...], name: str, base: Path,
                    env: dict) -> tuple[dict, float]:
    """The ``outputs`` of an uninterrupted run of ``command`` (file name: bytes), and its
    wall time once the world and the features exist."""
    timed([*command, f"workdir={base / f'{name}-reference'}"], env)
    wall = timed([*command, f"workdir={base / f'{name}-timing'}"], env)
    return {output: (base / f"{name}-reference" / output).read_bytes() for output in outputs}, wall


def trial_files(command: list[str], rng: random.Random, reference: dict, wall: float, env: dict,
                workdir: Path) -> Outcome:
    """Kill ``command`` and rerun it; after each kill an output present must already be the
    final one, and at the end every output must be the uninterrupted run's, byte for byte."""
    outcome = Outcome("")

    def start(kill_after, sig):
        return launch([*command, f"workdir={workdir}"], env, kill_after, sig)

    def half_written(done=None) -> str | None:
        for name, want in reference.items():
            path = workdir / name
            if path.exists() and path.read_bytes() != want:
                return f"{name} differs from the uninterrupted run's ({path.stat().st_size} bytes, {len(want)} wanted)"
        return None

    done = kill_and_rerun(rng, outcome, wall, start, half_written)
    if isinstance(done, Outcome):
        return done
    missing = [name for name in reference if not (workdir / name).exists()]
    problem = half_written() or (f"{', '.join(missing)} missing" if missing else None)
    return Outcome("anything else", problem, outcome.kills) if problem else Outcome("resumed equal", "", outcome.kills)


# --------------------------------------------------------------------------- the world
def reference_world(base: Path, env: dict) -> tuple[dict, float]:
    """Every file of the tiny world built once, and the build's wall time."""
    wall = timed(["-m", "drugjax.synthetic", base / "world-reference", *WORLD], env)
    return file_digests(base / "world-reference"), wall


def trial_world(rng: random.Random, reference: dict, wall: float, env: dict, workdir: Path) -> Outcome:
    outcome = Outcome("")
    out = workdir / "world"

    def start(kill_after, sig):
        return launch(["-m", "drugjax.synthetic", out, *WORLD], env, kill_after, sig)

    def taken_for_finished(done=None) -> str | None:
        # A later run takes a folder with world.json for an earlier world of its own.
        if (out / "world.json").exists() and file_digests(out) != reference:
            return f"a killed build left {out} with a world.json but not the world"
        return None

    workdir.mkdir(parents=True, exist_ok=True)
    done = kill_and_rerun(rng, outcome, wall, start, taken_for_finished)
    if isinstance(done, Outcome):
        return done
    if file_digests(out) != reference:
        return Outcome("anything else", "the world differs from the uninterrupted build's", outcome.kills)
    left = [p.name for p in workdir.iterdir() if p.name != out.name]
    if left:  # a killed build's temporary folder, which the finished one should have removed
        return Outcome("anything else", f"left beside the world: {left}", outcome.kills)
    return Outcome("resumed equal", "", outcome.kills)


# --------------------------------------------------------------------------- import-instaloader
def _import_command(root: Path, collection: Path) -> list:
    return ["-m", "drugjax.data", "import-instaloader", collection / "#xans", collection / "#lean",
            collection / "dealer.one", "--out", root]


def reference_import(base: Path, env: dict) -> tuple[dict, float]:
    """Instaloader folders (tests/instaloader_support.py), a ROOT holding the import of
    one of them (each trial starts from a copy), and every file of that ROOT after the
    uninterrupted incremental import of all three, with its wall time."""
    sys.path.insert(0, str(ROOT / "tests"))
    from instaloader_support import write_collection

    collection = base / "instaloader"
    if not collection.exists():
        write_collection(collection)
    first = base / "import-first"
    if not first.exists():
        done, _ = launch(["-m", "drugjax.data", "import-instaloader", collection / "#xans", "--out", first], env)
        if done.returncode != 0:
            raise SystemExit(f"the first import failed:\n{done.stdout[-1000:]}{done.stderr[-1000:]}")
    shutil.copytree(first, base / "import-reference", copy_function=shutil.copy2)
    wall = timed(_import_command(base / "import-reference", collection), env)
    return file_digests(base / "import-reference"), wall


def trial_import(rng: random.Random, reference: dict, wall: float, env: dict, workdir: Path) -> Outcome:
    from drugjax.data.validate import validate

    outcome = Outcome("")
    base = workdir.parent
    root = workdir / "root"
    shutil.copytree(base / "import-first", root, copy_function=shutil.copy2)

    def start(kill_after, sig):
        return launch(_import_command(root, base / "instaloader"), env, kill_after, sig)

    done = kill_and_rerun(rng, outcome, wall, start)
    if isinstance(done, Outcome):
        return done
    if not validate(root).ok:
        return Outcome("anything else", f"{root} does not validate", outcome.kills)
    got = file_digests(root)
    if got != reference:
        differ = sorted(name for name in set(got) | set(reference) if got.get(name) != reference.get(name))
        return Outcome("anything else", f"the ROOT differs from the uninterrupted import's: {differ[:5]}",
                       outcome.kills)
    return Outcome("resumed equal", "", outcome.kills)


# --------------------------------------------------------------------------- the TFDS build
# What train.py and evaluate.py do first with data.root=ROOT (drugjax.training.inputs
# .load_sources): build the ROOT's three TFDS datasets. The ROOT (the small world, written
# once by the generator) is only read, so the kills land in the build itself: a third to
# a half of the run, the rest being Python's imports.
BUILD_TFDS = ("import sys; from drugjax.data.builders import prepare; "
              "prepare(sys.argv[1], image_size=64, data_dir=sys.argv[2])")
TFDS_ROOT = ["--preset", "small", "--image-size", "64", "--seed", "0"]
DATASETS = ("drugjax_posts", "drugjax_web", "drugjax_accounts")


def built(data_dir: Path) -> dict[str, object]:
    """Each dataset a later run takes for finished in ``data_dir`` (tfds reuses a version
    folder that exists as it is), read back as it would be: a digest of every example
    TFDS reads back (the array_record shards themselves differ from build to build, the
    examples do not), and its JSON files (info, features, drugjax's metadata)."""
    import tensorflow_datasets as tfds

    found: dict[str, object] = {}
    for version in sorted((data_dir / "tfds").glob("*/*/1.0.0")):
        examples = tfds.builder_from_directory(str(version)).as_data_source()["full"]
        found[version.parent.parent.name] = (
            [hashlib.sha256(pickle.dumps(examples[i])).hexdigest() for i in range(len(examples))],
            {p.name: p.read_bytes() for p in sorted(version.glob("*.json"))})
    return found


def leftovers(data_dir: Path) -> list[str]:
    """What killed builds left behind: tfds's ``incomplete.*`` folders."""
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.glob("tfds/*/*/incomplete.*"))


def reference_tfds(base: Path, env: dict) -> tuple[dict, float]:
    """The ROOT (written once), its three datasets built once, and the build's wall time."""
    root = base / "tfds-root"
    if not root.exists():
        timed(["-m", "drugjax.synthetic", root, *TFDS_ROOT], env)
    wall = timed(["-c", BUILD_TFDS, root, base / "tfds-reference"], env)
    found = built(base / "tfds-reference")
    if sorted(found) != sorted(DATASETS):
        raise SystemExit(f"the uninterrupted build made {sorted(found)}, not {DATASETS}")
    return found, wall


def trial_tfds(rng: random.Random, reference: dict, wall: float, env: dict, workdir: Path) -> Outcome:
    outcome = Outcome("")
    data_dir = workdir / "data"

    def start(kill_after, sig):
        return launch(["-c", BUILD_TFDS, workdir.parent / "tfds-root", data_dir], env, kill_after, sig)

    def taken_for_finished(done=None) -> str | None:
        differ = [name for name, got in built(data_dir).items() if got != reference.get(name)]
        return f"a killed build left {', '.join(differ)} looking finished but not equal" if differ else None

    done = kill_and_rerun(rng, outcome, wall, start, taken_for_finished)
    if isinstance(done, Outcome):
        return done
    got = built(data_dir)
    if got != reference:
        differ = sorted(name for name in set(got) | set(reference) if got.get(name) != reference.get(name))
        return Outcome("anything else", f"differs from the uninterrupted build: {differ}", outcome.kills)
    left = leftovers(data_dir)
    if left:
        return Outcome("anything else", f"killed builds' folders left behind: {left[:3]}", outcome.kills)
    return Outcome("resumed equal", "", outcome.kills)


COMMANDS = {  # name: (the table's row, reference, trial)
    "train": ("train.py heads, tiny world", partial(reference_train, TRAIN_HEADS, "train"),
              partial(trial_train, TRAIN_HEADS)),
    "finetune": ("train.py end to end (finetune), 64 px, tiny world", partial(reference_train, FINETUNE, "finetune"),
                 partial(trial_train, FINETUNE)),
    "evaluate": ("evaluate.py, tiny world",
                 partial(reference_files, ["evaluate.py", *EVALUATE_TINY], EVALUATE_OUTPUTS, "evaluate"),
                 partial(trial_files, ["evaluate.py", *EVALUATE_TINY])),
    "sweep": ("train.py vmap sweep (relation weight, 3 x 2), tiny",
              partial(reference_files, ["train.py", *SWEEP], ("ablation.csv",), "sweep"),
              partial(trial_files, ["train.py", *SWEEP])),
    "world": ("python -m drugjax.synthetic, tiny", reference_world, trial_world),
    "import": ("import-instaloader, incremental", reference_import, trial_import),
    "tfds": ("the TFDS build of a ROOT (small world, 3 datasets)", reference_tfds, trial_tfds),
}


def compilation_cache(base: Path, enabled: bool = True) -> dict[str, str]:
    """The environment that gives every child process JAX's persistent compilation cache
    in ``base/xla-cache`` (as tests/conftest.py does for the test suite), so that only the
    reference runs compile; without it each finetune process compiles Inception-v1 anew.
    (JAX's cache keys depend on the cache's path: one folder per soak, never moved.)"""
    if not enabled:
        return {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    return {"JAX_COMPILATION_CACHE_DIR": str(base / "xla-cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.1",  # faster compilations are not worth a file
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="trials in all, shared out over the commands")
    parser.add_argument("--seed", type=int, default=0, help="the first trial's seed; trial i uses seed + i")
    parser.add_argument("--seconds", type=float, default=None, help="stop starting trials after this budget")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("--commands", default=",".join(COMMANDS),
                        help=f"comma-separated, of {', '.join(COMMANDS)} (default: all)")
    parser.add_argument("--no-compilation-cache", action="store_true",
                        help="every process compiles its programs anew (to measure what the cache saves)")
    args = parser.parse_args(argv)
    commands = args.commands.split(",")
    unknown = sorted(set(commands) - set(COMMANDS))
    if unknown:
        parser.error(f"unknown commands {unknown}; choose from {', '.join(COMMANDS)}")
    base = args.keep or Path(tempfile.mkdtemp(prefix="drugjax-soak-"))
    base.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DRUGJAX_DATA_DIR=str(base / "data"), JAX_PLATFORMS="cpu")
    env.update(compilation_cache(base, enabled=not args.no_compilation_cache))
    CUT_CACHE_ENTRIES.clear()
    t0 = time.monotonic()
    references = {}
    for name in commands:
        t1 = time.monotonic()
        references[name] = COMMANDS[name][1](base, env)
        print(f"reference {name}: {time.monotonic() - t1:.0f} s, an uninterrupted run {references[name][1]:.1f} s",
              flush=True)
    outcomes: dict[str, list[tuple[int, Outcome]]] = {name: [] for name in commands}
    for i in range(args.trials):
        if args.seconds is not None and time.monotonic() - t0 > args.seconds:
            break
        seed, name = args.seed + i, commands[i % len(commands)]
        reference, wall = references[name]
        t1 = time.monotonic()
        outcome = COMMANDS[name][2](random.Random(seed), reference, wall, env, base / f"{name}-trial-{seed}")
        outcomes[name].append((seed, outcome))
        kills = ", ".join(f"{sig} at {share:.0%}" for sig, share in outcome.kills) or "no kill: it finished first"
        print(f"trial seed {seed} ({name}): {outcome.kind}{': ' + outcome.what if outcome.what else ''} ({kills}; "
              f"{time.monotonic() - t1:.0f} s)", flush=True)

    print("\n| command | trials | kills (SIGKILL / SIGTERM) | kill moments (share of the run) | resumed equal | "
          "refused with a clear message | anything else |")
    print("|---|---|---|---|---|---|---|")
    for name, done in outcomes.items():
        shares = [share for _, o in done for _, share in o.kills]
        sigterms = sum(sig == "SIGTERM" for _, o in done for sig, _ in o.kills)
        counts = [sum(o.kind == kind for _, o in done) for kind in OUTCOMES]
        print(f"| {COMMANDS[name][0]} | {len(done)} | {len(shares) - sigterms} / {sigterms} | "
              f"{min(shares, default=0):.0%}-{max(shares, default=0):.0%} | " + " | ".join(map(str, counts)) + " |")
    if CUT_CACHE_ENTRIES:
        print(f"compilation-cache entries a kill cut short (removed): {len(CUT_CACHE_ENTRIES)}")
    failed = [(name, seed) for name, done in outcomes.items() for seed, o in done if o.kind == "anything else"]
    print(f"\n`python bench/soak.py --trials {args.trials} --seed {args.seed} --commands {','.join(commands)}`, "
          f"{time.monotonic() - t0:.0f} s; run directories in {base}")
    if failed:
        print("replay a failing trial: " + "; ".join(f"--seed {seed} --trials 1 --commands {name}"
                                                     for name, seed in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
