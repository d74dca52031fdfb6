"""Input pipeline throughput against the training step it has to feed.

Measures images/s of the grain pipeline alone (decode, random resized crop, flip,
ImageNet normalisation, batching into (devices, per_device_batch, S, S, 3) float32,
transfer from the worker processes) over the synthetic world built by
``drugjax.data.builders.prepare``, at 96 and 224 px with 0, 1 and 2 worker processes;
and, as the reference in the same run, images/s of one InceptionV1 training step
(forward, backward, SGD update; jitted) on this machine's default JAX device at the
same sizes. The pipeline keeps ahead when its images/s exceed the step's.

    python bench/pipeline.py                       # the table in docs/benchmarks.md
    python bench/pipeline.py --sizes 96 --workers 0 1 2 4 --batches 40
    python bench/pipeline.py --no-train-step       # pipeline only

Building the synthetic world at a size happens once (cached under --data-dir).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import sys
import time


def pipeline_rate(sources, image_size: int, batch: int, workers: int, batches: int, warmup: int) -> float:
    from drugjax.data import pipeline

    loader = pipeline.train_loader(
        sources,
        image_size=image_size,
        per_device_batch=batch,
        num_devices=1,
        seed=0,
        mixture={"posts": 0.5, "web": 0.5},
        augment=True,
        workers=workers,
    )
    with loader:
        for _ in range(warmup):  # worker start-up and first reads are not throughput
            next(loader)
        start = time.perf_counter()
        for _ in range(batches):
            b = next(loader)
            b["image"].sum()  # touch the data, as a host-to-device copy would
        elapsed = time.perf_counter() - start
    return batches * batch / elapsed


def stage_costs(sources, image_size: int, n: int = 200) -> dict[str, float]:
    """CPU milliseconds per image of each stage, in this process (process time, so other
    jobs on the machine disturb it less than wall time)."""
    import numpy as np

    from drugjax.data import augment as aug

    src = sources["web"]
    data = [src[i]["image"] for i in range(min(n, len(src)))]
    rng = np.random.default_rng(0)
    cfg = aug.AugmentConfig()
    aug.decode(data[0]).load()  # Pillow loads its codec plugins on first use
    t0 = time.process_time()
    decoded = [aug.decode(d) for d in data]
    for im in decoded:
        im.load()
    t1 = time.process_time()
    out = [aug.train_image(im, image_size, rng, cfg) for im in decoded]
    t2 = time.process_time()
    buf = np.empty((image_size, image_size, 3), np.float32)
    for o in out:
        aug.normalize(o, out=buf)
    t3 = time.process_time()
    k = 1000 / len(data)
    return {"decode": (t1 - t0) * k, "crop+resize+flip": (t2 - t1) * k, "normalise": (t3 - t2) * k}


def train_step_rate(image_size: int, batch: int, steps: int) -> tuple[float, str]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from drugjax.losses import masked_bce
    from drugjax.models import InceptionV1
    from drugjax.tasks import encode_labels

    model = InceptionV1(num_classes=4)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, image_size, image_size, 3)), jnp.float32)
    kinds = np.arange(batch) % 6
    targets, weights = (jnp.asarray(a) for a in encode_labels(kinds))
    variables = model.init({"params": jax.random.PRNGKey(0)}, x[:1], train=False)
    params, batch_stats = variables["params"], variables["batch_stats"]
    tx = optax.sgd(0.01, momentum=0.9)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, batch_stats, opt_state, x, key):
        def loss_fn(p):
            logits, updates = model.apply(
                {"params": p, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"], rngs={"dropout": key}
            )
            return masked_bce(logits, targets, weights), updates["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    key = jax.random.PRNGKey(1)
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, x, key)  # compile
    loss.block_until_ready()
    start = time.perf_counter()
    for _ in range(steps):
        params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, x, key)
    loss.block_until_ready()
    elapsed = time.perf_counter() - start
    return steps * batch / elapsed, str(jax.devices()[0].device_kind)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=64, help="images per pipeline batch")
    ap.add_argument("--batches", type=int, default=20, help="timed pipeline batches per cell")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data-dir", default=None, help="build cache (default: $DRUGJAX_DATA_DIR or ~/.cache/drugjax)")
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--no-train-step", action="store_true")
    args = ap.parse_args(argv)

    from drugjax.data.builders import prepare

    rows = []
    for size in args.sizes:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # tfds announces builds on stdout; keep it for the table
            sources = prepare(None, preset=args.preset, seed=0, image_size=size, data_dir=args.data_dir)
        print(f"# {size} px: sources ready in {time.perf_counter() - t0:.1f} s "
              f"({len(sources['posts'])} posts, {len(sources['web'])} web images)", file=sys.stderr)
        rates = {}
        for w in args.workers:
            rates[w] = pipeline_rate(sources, size, args.batch, w, args.batches, args.warmup)
            print(f"# {size} px, {w} workers: {rates[w]:.0f} img/s", file=sys.stderr)
        costs = stage_costs(sources, size)
        step = kind = None
        if not args.no_train_step:
            step, kind = train_step_rate(size, args.train_batch, args.train_steps)
            print(f"# {size} px train step on {kind}: {step:.1f} img/s", file=sys.stderr)
        rows.append((size, rates, step, kind, costs))

    import jax

    print(f"command: python {' '.join(shlex.quote(a) for a in ['bench/pipeline.py', *sys.argv[1:]])}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPU cores (os.cpu_count), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, jax {jax.__version__} "
        f"on {jax.devices()[0].platform}"
    )
    print(f"pipeline: train_loader, preset {args.preset}, mixture posts/web 0.5/0.5, augment on, "
          f"batch {args.batch}, {args.batches} timed batches after {args.warmup} warm-up")
    if not args.no_train_step:
        print(f"reference: InceptionV1 train step (fwd+bwd+SGD, jit), batch {args.train_batch}, "
              f"{args.train_steps} timed steps after compile")
    print()
    head = "| size | " + " | ".join(f"pipeline, {w} workers (img/s)" for w in args.workers)
    head += " | train step (img/s) | slowest pipeline / step |" if not args.no_train_step else " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for size, rates, step, kind, _ in rows:
        cells = [f"{size} px"] + [f"{rates[w]:.0f}" for w in args.workers]
        if step is not None:
            cells += [f"{step:.1f} ({kind})", f"{min(rates.values()) / step:.1f}x"]
        print("| " + " | ".join(cells) + " |")
    print()
    print("CPU ms per image, one core (decode / crop+resize+flip / normalise; image format: what the build stores):")
    for size, _, _, _, costs in rows:
        print(f"  {size} px: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()) + f", total {sum(costs.values()):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
