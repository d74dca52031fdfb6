"""Training-step throughput: the end-to-end model (images/s) and the heads on features
(samples/s), with pmap over 1 and 4 devices.

    python bench/train_step.py                     # CPU: 1 and 4 forced host devices
    python bench/train_step.py --write-docs        # also update docs/benchmarks.md
    python bench/train_step.py --devices 1 8 --sizes 224 --batch-224 256   # on GPUs

Each device count runs in its own subprocess (the number of forced host devices is fixed
when JAX starts; on GPU/TPU hosts the real local devices are used, the first N of them).
A step is timed after one warm-up (compile) step, blocking on every step. The reference
columns, measured in the same process, are a jitted forward pass of the same model on
one device (inference throughput) and a float32 matmul rate of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Training step"


def _matmul_gflops() -> float:
    import jax
    import jax.numpy as jnp

    a = jnp.ones((1024, 1024), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    t = time.perf_counter()
    for _ in range(10):
        f(a).block_until_ready()
    return 10 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9


def worker(args) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from drugjax.models import InceptionV1
    from drugjax.models.heads import EndToEnd, MultitaskHeads
    from drugjax.training.config import OptimConfig
    from drugjax.training.optim import make_optimizer
    from drugjax.training.state import TrainState
    from drugjax.training.steps import DataParallel, make_steps

    nd = args.devices[0]
    devices = jax.local_devices()[:nd]
    if len(devices) < nd:
        raise SystemExit(f"asked for {nd} devices, {len(devices)} available")
    dp = DataParallel("pmap", devices)
    rng = np.random.default_rng(0)
    rows = []

    def time_steps(model, x_shape, batch, steps, warmup=1):
        x = rng.normal(size=(batch,) + x_shape).astype(np.float32)
        kinds = rng.integers(0, 6, batch).astype(np.int32)
        v = jax.jit(model.init)(jax.random.key(0), x[:1])
        tx = make_optimizer(OptimConfig(), v["params"], total_steps=100)
        state = dp.put_state(TrainState.create(apply_fn=model.apply, variables=v, tx=tx, rng=jax.random.PRNGKey(0)))
        train, _ = make_steps(dp, relation_weight=0.5)
        b = dp.put_batch({"x": x.reshape((nd, batch // nd) + x_shape), "kind": kinds.reshape(nd, -1),
                          "valid": np.ones((nd, batch // nd), bool)})
        t0 = time.perf_counter()
        for _ in range(warmup):
            state, m = train(state, b)
            jax.block_until_ready(m)
        compile_s = time.perf_counter() - t0
        t = time.perf_counter()
        for _ in range(steps):
            state, m = train(state, b)
            jax.block_until_ready(m)  # one step at a time (forced CPU devices can deadlock otherwise)
        train_rate = batch * steps / (time.perf_counter() - t)
        # Reference: jitted inference of the same model on one device.
        fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
        xd = jnp.asarray(x)
        fwd(v, xd).block_until_ready()
        t = time.perf_counter()
        for _ in range(steps):
            fwd(v, xd).block_until_ready()
        fwd_rate = batch * steps / (time.perf_counter() - t)
        return train_rate, fwd_rate, compile_s

    for size in args.sizes:
        batch = {96: args.batch_96, 224: args.batch_224}.get(size, args.batch_96)
        model = EndToEnd(backbone=InceptionV1(), heads=MultitaskHeads())
        tr, fw, cs = time_steps(model, (size, size, 3), batch, args.steps)
        rows.append({"model": f"end-to-end Inception-v1 + heads, {size} px", "unit": "images/s", "devices": nd,
                     "batch": batch, "train": tr, "forward": fw, "compile_s": cs})
    heads = MultitaskHeads()
    tr, fw, cs = time_steps(heads, (1024,), args.batch_heads, args.steps_heads)
    rows.append({"model": "heads on 1024-d features", "unit": "samples/s", "devices": nd, "batch": args.batch_heads,
                 "train": tr, "forward": fw, "compile_s": cs})
    info = {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "matmul_gflops": _matmul_gflops(), "jax": jax.__version__}
    print("RESULT " + json.dumps({"rows": rows, "info": info}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 4])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    p.add_argument("--batch-96", type=int, default=16)
    p.add_argument("--batch-224", type=int, default=8)
    p.add_argument("--batch-heads", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--steps-heads", type=int, default=50)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--write-docs", action="store_true", help="replace the '## Training step' section of docs/benchmarks.md")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    for size in args.sizes:
        batch = {96: args.batch_96, 224: args.batch_224}.get(size, args.batch_96)
        for n in args.devices:
            if batch % n or args.batch_heads % n:
                raise SystemExit(f"batch sizes must be multiples of every device count ({n})")

    load_before = os.getloadavg()[0]
    results = []
    from drugjax.runtime import huge_pages

    worker_env = dict(os.environ)
    if huge_pages.wanted(worker_env):  # as train.py runs itself
        worker_env = huge_pages.environment(worker_env)
    for n in args.devices:
        env = dict(worker_env)
        import jax  # noqa: F401  (only to learn the platform; the workers do the work)

        if jax.default_backend() == "cpu":
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}").strip()
        cmd = [sys.executable, __file__, "--worker", "--devices", str(n), "--sizes", *map(str, args.sizes),
               "--batch-96", str(args.batch_96), "--batch-224", str(args.batch_224),
               "--batch-heads", str(args.batch_heads), "--steps", str(args.steps), "--steps-heads", str(args.steps_heads)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not line:
            raise SystemExit(f"worker with {n} devices failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(line[-1][7:]))

    info = results[0]["info"]
    command = "python bench/train_step.py " + " ".join(sys.argv[1:])
    lines = [
        HEADING,
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {platform.node() or 'unknown'}, {os.cpu_count()} CPU cores (load average "
        f"{load_before:.1f} at start), backend {info['backend']} "
        f"({info['device_kind']}), jax {info['jax']}; float32 1024x1024 matmul reference: "
        f"{info['matmul_gflops']:.1f} GFLOP/s; GLIBC_TUNABLES="
        f"{worker_env.get('GLIBC_TUNABLES') or '(not set)'} (drugjax.runtime.huge_pages, as train.py sets it).  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One pmap'd train step (RMSprop, masked "
        "multitask loss) at a time; forward = jitted inference of the same model on one device, same run.",
        "",
        "| model | devices | global batch | train step | forward (reference) | compile + first step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| {r['model']} | {r['devices']} | {r['batch']} | {r['train']:.1f} {r['unit']} | "
                         f"{r['forward']:.1f} {r['unit']} | {r['compile_s']:.1f} s |")
    if info["backend"] == "cpu" and len(args.devices) > 1:
        lines += ["", "Forced host devices share the same CPU cores, so more devices do not add compute here: "
                  "the 4-device rows measure the cost of the data-parallel machinery (collectives, per-device "
                  "dispatch), not a speed-up. Real speed-ups need real devices (GPUs/TPUs)."]
    if load_before > (os.cpu_count() or 1) / 2:
        lines += ["", "Other jobs shared the cores during this run (see the load average), so the figures move "
                  "between runs; the forward column, measured in the same process, is the yardstick."]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write_docs:
        path = ROOT / "docs" / "benchmarks.md"
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        # Replace only this section (up to the next '## ' heading); other sections belong to others.
        pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(text):
            text = pattern.sub(lambda m: section + "\n", text)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        path.write_text(text)
        print(f"updated {path}")


if __name__ == "__main__":
    main()
