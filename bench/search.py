"""A 48-trial TPE study two ways, on the same machine in one run, each in its own process:

(a) Hydra's Optuna sweeper (``python train.py -m hparams_search=optuna``): one trial at a
    time, each a train.py job that loads the features, compiles its step and trains;
(b) ``python train.py experiment=search``: the study asked in rounds of ``--batch``
    trials, each round trained in the sweep engine's vmapped program.

Same features (the small world's, cached by an untimed warm-up), same space, same seed,
same steps and batch; the metric is the drug head's validation AUC on fold 0 at the last
step. Printed: wall time (the whole command, start-up included), trials per minute, the
best value each reached, the speed-up.

    python bench/search.py [--trials 48] [--batch 16] [--preset small] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conf/hparams_search/optuna.yaml holds experiment=search's space less the trunk widths
# (Hydra's sweeper cannot offer a choice of lists): the search drops them here.
SEARCH_SPACE = ["~search.space.hidden"]


def cpu() -> str:
    """The processor's name and whether it has AVX-512 (machines differ between sessions)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor())
    return f"{name}, {'AVX-512' if ' avx512f' in info else 'no AVX-512'}"


def common(args) -> list[str]:
    return [f"data.preset={args.preset}", f"steps={args.steps}", f"eval_every={args.steps}",
            f"checkpoint_every={args.steps}", "log_every=100", "data.batch_size=64", "optim.warmup_steps=20",
            "data.val_fold=0", "seed=0", "progress=false", "tensorboard=false"]


def run(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds


def hydra_sweeper(args, tmp: str) -> dict:
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=optuna", *common(args),
           f"hydra.sweeper.n_trials={args.trials}", "hydra.sweeper.sampler.seed=0", f"hydra.sweep.dir={tmp}/hydra"]
    seconds = run(cmd, tmp)
    best = yaml.safe_load(Path(tmp, "hydra", "optimization_results.yaml").read_text())
    return {"seconds": seconds, "trials": args.trials, "best": float(best["best_value"])}


def vmap_search(args, tmp: str, *, trials: int | None = None, workdir: str = "search") -> dict:
    trials = trials or args.trials
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=search", *common(args), f"workdir={tmp}/{workdir}",
           f"search.trials={trials}", f"search.batch={args.batch}", "search.seed=0", *SEARCH_SPACE]
    seconds = run(cmd, tmp)
    out = json.loads(Path(tmp, workdir, "search.json").read_text())
    return {"seconds": seconds, "trials": out["trials"], "finished": out["finished"], "best": out["best_value"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=48)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        vmap_search(args, tmp, trials=1, workdir="warm-up")  # the world and its features, once, untimed
        load_before = os.getloadavg()
        results = {"Hydra's Optuna sweeper (train.py -m hparams_search=optuna)": hydra_sweeper(args, tmp),
                   "vmap rounds (train.py experiment=search)": vmap_search(args, tmp)}
        load_after = os.getloadavg()
    reference = next(iter(results.values()))["seconds"]
    print(f"command: python bench/search.py {' '.join(sys.argv[1:])}")
    print(f"machine: {cpu()}, {os.cpu_count()} CPUs, {platform.platform()}; load average (1 min) {load_before[0]:.2f} "
          f"before, {load_after[0]:.2f} after")
    print(f"{args.trials} TPE trials (seed 0), {args.steps} steps of batch 64 each, preset {args.preset}, "
          f"validation fold 0; the search asks {args.batch} trials per round")
    print()
    print("| way | trials | wall s | trials per minute | best AUC | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['trials']} | {r['seconds']:.1f} | {60 * r['trials'] / r['seconds']:.1f} | "
              f"{r['best']:.4f} | {reference / r['seconds']:.1f}x |")


if __name__ == "__main__":
    main()
