"""Faults on purpose: kill train.py at random moments, run it again, compare with a run
that was never interrupted.

    python bench/soak.py [--trials N] [--seed S] [--seconds BUDGET] [--keep DIR]

For each trial (its own seed, printed, so a failing trial can be replayed with
``--seed S --trials 1``): start the command in a fresh run directory, send SIGKILL (or,
in a third of the trials, SIGTERM) at a moment drawn uniformly from the uninterrupted
run's wall time, then run the same command again, killing it once more in half of the
trials, until it finishes. The outcome is

* **resumed equal**: the final parameters are bitwise those of the uninterrupted run and
  metrics.jsonl holds its (step, split) pairs, each once, and besides them only the train
  line a SIGTERM stop writes at the step it stopped at (the losses of the window it cut
  short, so none is lost);
* **refused with a clear message**: a rerun ended with one ``error:`` line and no traceback;
* **anything else**, with what: different parameters, a duplicated or missing step, a
  traceback, a rerun that never finishes. The script then exits 1.

Covered so far (issue 26): ``train.py`` on cached features (the paper's MT MLP heads on
the tiny world). The world and its features are built once, by the reference run, so the
kill moments cover start-up, compilation, training, evaluation and checkpoint writes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN_HEADS = ["experiment=paper_mtl", "data.preset=tiny", "data.image_size=64", "model.hidden=[16,16]",
               "data.batch_size=16", "steps=120", "checkpoint_every=20", "eval_every=40", "log_every=10",
               "progress=false", "tensorboard=false"]
RERUN_LIMIT = 5  # reruns of one trial before it counts as "never finishes"


@dataclass
class Outcome:
    kind: str  # "resumed equal", "refused with a clear message", "anything else"
    what: str = ""
    kills: list[tuple[str, float]] = field(default_factory=list)  # (signal, share of the reference wall time)


def train(workdir: Path, env: dict, kill_after: float | None = None, sig: int = signal.SIGKILL
          ) -> tuple[subprocess.CompletedProcess, bool]:
    """Run train.py into ``workdir``; with ``kill_after``, send ``sig`` after that many
    seconds. Returns what it printed and whether the signal was sent (False: it finished
    first)."""
    cmd = [sys.executable, str(ROOT / "train.py"), *TRAIN_HEADS, f"workdir={workdir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=kill_after)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err), False
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err), True


def final_state(workdir: Path) -> tuple[list[np.ndarray], list[tuple[int, str]]]:
    from drugjax.training.checkpoint import read_params

    import jax

    params = [np.asarray(a) for a in jax.tree.leaves(read_params(workdir)["params"])]
    logged = [(r["step"], r["split"]) for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())]
    return params, logged


def trial(rng: random.Random, reference: tuple, wall: float, env: dict, workdir: Path) -> Outcome:
    outcome = Outcome("")
    stopped_at: set[int] = set()  # steps a SIGTERM stopped at
    kills = 1 + (rng.random() < 0.5)
    for attempt in range(kills + RERUN_LIMIT):
        if attempt < kills:
            share = rng.uniform(0.02, 1.0)
            sig = signal.SIGTERM if rng.random() < 1 / 3 else signal.SIGKILL
            outcome.kills.append((signal.Signals(sig).name, share))
            done, killed = train(workdir, env, kill_after=share * wall, sig=sig)
        else:
            done, killed = train(workdir, env)
        stop = re.search(r"stopped by SIGTERM at step (\d+)", done.stdout)
        if stop:
            stopped_at.add(int(stop.group(1)))
            continue  # stopped cleanly at a checkpoint: run again
        if killed:
            continue  # killed (SIGKILL, or SIGTERM before its handler): run again
        text = done.stdout + done.stderr
        if "Traceback" in text:
            return Outcome("anything else", f"a traceback: {done.stderr.strip().splitlines()[-1]}", outcome.kills)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            if len(errors) == 1:
                return Outcome("refused with a clear message", errors[0], outcome.kills)
            return Outcome("anything else", f"exit {done.returncode}: {done.stderr.strip()[-300:]}", outcome.kills)
        params, logged = final_state(workdir)
        want_params, want_logged = reference
        extra = set(logged) - set(want_logged)
        if (len(logged) != len(set(logged)) or not set(want_logged) <= set(logged)
                or any(split != "train" or step not in stopped_at for step, split in extra)):
            return Outcome("anything else", "metrics.jsonl differs from the uninterrupted run's "
                           f"({len(logged)} lines, {len(set(logged))} distinct)", outcome.kills)
        if len(params) != len(want_params) or any(not np.array_equal(a, b) for a, b in zip(params, want_params)):
            return Outcome("anything else", "final parameters differ from the uninterrupted run's", outcome.kills)
        return Outcome("resumed equal", "", outcome.kills)
    return Outcome("anything else", f"not finished after {RERUN_LIMIT} reruns", outcome.kills)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="the first trial's seed; trial i uses seed + i")
    parser.add_argument("--seconds", type=float, default=None, help="stop starting trials after this budget")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="drugjax-soak-"))
    env = dict(os.environ, DRUGJAX_DATA_DIR=str(base / "data"), JAX_PLATFORMS="cpu")
    t0 = time.monotonic()
    done, _ = train(base / "reference", env)
    if done.returncode != 0:
        print(f"the uninterrupted run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return 1
    t1 = time.monotonic()
    train(base / "timing", env)  # the world and features exist now: the wall time kills are drawn from
    wall = time.monotonic() - t1
    reference = final_state(base / "reference")
    print(f"reference: {time.monotonic() - t0:.0f} s with the world and features built, {wall:.1f} s after")
    outcomes: list[tuple[int, Outcome]] = []
    for i in range(args.trials):
        if args.seconds is not None and time.monotonic() - t0 > args.seconds:
            break
        seed = args.seed + i
        outcome = trial(random.Random(seed), reference, wall, env, base / f"trial-{seed}")
        outcomes.append((seed, outcome))
        kills = ", ".join(f"{name} at {share:.0%}" for name, share in outcome.kills)
        print(f"trial seed {seed}: {outcome.kind}{': ' + outcome.what if outcome.what else ''} ({kills})", flush=True)
    shares = [share for _, o in outcomes for _, share in o.kills]
    counts = {kind: sum(o.kind == kind for _, o in outcomes)
              for kind in ("resumed equal", "refused with a clear message", "anything else")}
    print("\n| command | trials | kills (SIGKILL / SIGTERM) | kill moments (share of the run) | resumed equal | "
          "refused with a clear message | anything else |")
    print("|---|---|---|---|---|---|---|")
    sigterms = sum(name == "SIGTERM" for _, o in outcomes for name, _ in o.kills)
    print(f"| train.py heads, tiny world | {len(outcomes)} | {len(shares) - sigterms} / {sigterms} | "
          f"{min(shares, default=0):.0%}-{max(shares, default=0):.0%} | {counts['resumed equal']} | "
          f"{counts['refused with a clear message']} | {counts['anything else']} |")
    print(f"\n`python bench/soak.py --trials {args.trials} --seed {args.seed}`, {time.monotonic() - t0:.0f} s; "
          f"run directories in {base}")
    return 1 if counts["anything else"] else 0


if __name__ == "__main__":
    sys.exit(main())
