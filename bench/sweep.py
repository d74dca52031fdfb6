"""The relation-weight ablation three ways, on the same machine in one run:

(a) the vmap engine: every training in one compiled program (drugjax.training.sweep);
(b) sweep.engine=loop: the same trainings one after another through the ordinary step
    (timed on a subset, scaled to all);
(c) a Hydra multirun of separate train.py processes (timed on a subset, scaled).

Each method runs in its own process, so its peak memory is its own. Also printed: the
samples/s per configuration, and the machine's float32 matmul rate with the heads' FLOPs
per sample, to say how close to the limit the engine runs.

    python bench/sweep.py [--preset small] [--weights 11 --folds 5 --seeds 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cfg(preset: str, steps: int, weights: int, folds: int, seeds: int, engine: str):
    from drugjax.training.config import TrainConfig

    cfg = TrainConfig()
    cfg.name = "bench_sweep"
    cfg.model.kind = "heads"
    cfg.model.backbone.trainable = False
    cfg.data.preset = preset
    cfg.data.batch_size = 64
    cfg.steps = steps
    cfg.optim.warmup_steps = 20
    cfg.sweep.enabled = True
    cfg.sweep.engine = engine
    cfg.sweep.relation_weights = [round(i / max(1, weights - 1), 4) for i in range(weights)]
    cfg.sweep.folds = list(range(folds))
    cfg.sweep.seeds = list(range(seeds))
    cfg.sweep.chunk_steps = steps  # no intermediate saves: time the training itself
    return cfg


def run_engine(args) -> dict:
    """One method in this process: {"seconds", "trainings", "peak_mb"}."""
    from drugjax.training.grid import features_table, grid
    from drugjax.training.sweep import Schedule, train_sweep

    cfg = _cfg(args.preset, args.steps, args.weights, args.folds, args.seeds, args.method)
    table = features_table(cfg)  # cached after the first method
    configs, _ = grid(cfg)
    configs = configs[: args.limit] if args.limit else configs
    schedule = Schedule(steps=cfg.steps, batch_size=cfg.data.batch_size, optim=cfg.optim, chunk_steps=cfg.steps)
    start = time.perf_counter()
    train_sweep(table, configs, schedule, engine=args.method)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "trainings": len(configs), "rows": int(table.features.shape[0]),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_multirun(args) -> dict:
    """A Hydra multirun of separate train.py processes, one relation weight each."""
    weights = ",".join(str(round(i / max(1, args.weights - 1), 4)) for i in range(args.limit))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "train.py"), "-m", "experiment=paper_mtl", f"model.relation_weight={weights}",
               f"data.preset={args.preset}", f"steps={args.steps}", f"eval_every={args.steps}",
               f"checkpoint_every={args.steps}", "progress=false", "tensorboard=false", f"hydra.sweep.dir={tmp}/m"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
    return {"seconds": seconds, "trainings": args.limit,
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def matmul_gflops() -> float:
    import jax
    import jax.numpy as jnp

    a = jnp.ones((1024, 1024), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    start, n = time.perf_counter(), 20
    for _ in range(n):
        out = f(a)
    out.block_until_ready()
    return 2 * 1024 ** 3 * n / (time.perf_counter() - start) / 1e9


def _child(method: str, args, limit: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--preset", args.preset, "--steps", str(args.steps),
           "--weights", str(args.weights), "--folds", str(args.folds), "--seeds", str(args.seeds),
           "--limit", str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--weights", type=int, default=11)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--loop-subset", type=int, default=11)
    p.add_argument("--multirun-subset", type=int, default=3)
    p.add_argument("--child", default=None)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--method", default=None)
    args = p.parse_args()
    if args.child:
        args.method = args.child
        out = run_multirun(args) if args.child == "multirun" else run_engine(args)
        print(json.dumps(out))
        return

    total = args.weights * args.folds * args.seeds
    load_before = os.getloadavg()
    _child("vmap", args, 1)  # builds the world and the feature cache once, untimed
    results = {
        "vmap": _child("vmap", args, 0),
        "loop": _child("loop", args, args.loop_subset),
        "multirun": _child("multirun", args, args.multirun_subset),
    }
    gflops = matmul_gflops()
    load_after = os.getloadavg()

    hidden, dim, tasks, batch = 256, 1024, 4, 64
    flop_per_sample = 3 * 2 * (dim * hidden + hidden * hidden + hidden * tasks)  # forward + backward
    print(f"command: python bench/sweep.py {' '.join(sys.argv[1:])}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; load average (1 min) {load_before[0]:.2f} "
          f"before, {load_after[0]:.2f} after")
    print(f"{total} trainings ({args.weights} relation weights x {args.folds} folds x {args.seeds} seeds), "
          f"{args.steps} steps of batch {batch}, preset {args.preset}; features: {results['vmap']['rows']} rows")
    print()
    print("| method | timed trainings | wall s (timed) | wall s for all | speed-up of vmap | peak MB | samples/s, all trainings |")
    print("|---|---|---|---|---|---|---|")
    vmap_all = results["vmap"]["seconds"]
    for name, r in results.items():
        scaled = r["seconds"] * total / r["trainings"]
        rate = args.steps * batch * r["trainings"] / r["seconds"]
        print(f"| {name} | {r['trainings']} | {r['seconds']:.1f} | {scaled:.1f} | {scaled / vmap_all:.1f}x | "
              f"{r['peak_mb']:.0f} | {rate:,.0f} |")
    total_rate = args.steps * batch * total / vmap_all
    print()
    print(f"vmap engine: {total_rate:,.0f} samples/s over all trainings = "
          f"{total_rate * flop_per_sample / 1e9:.1f} GFLOP/s of the heads' matmuls, against "
          f"{gflops:.0f} GFLOP/s for a 1024x1024 float32 matmul in JAX on this machine "
          f"({100 * total_rate * flop_per_sample / 1e9 / gflops:.0f}%); wall time includes compilation")


if __name__ == "__main__":
    main()
