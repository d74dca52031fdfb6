"""Backbone benchmark: images/s of InceptionV1's eval forward and of one training step
(forward, backward, SGD-momentum update), and the same for torchvision's GoogLeNet in the
same run when torch and torchvision are importable (channels_last, same thread count).

    python bench/backbone.py                       # batch 32, 224x224, float32
    python bench/backbone.py --batch 8 --steps 3   # quicker
    python bench/backbone.py --no-torch

Both frameworks use the same work: 1000-class head, softmax cross-entropy on fixed random
labels, SGD with momentum 0.9, BatchNorm in training mode, dropout 0.2. Each figure is the
median over --steps timed iterations after --warmup untimed ones (the first includes
compilation). Other processes on the machine slow both sides alike, so the ratio
drugjax/torchvision measured in the same run is the figure to compare, not the absolute
numbers. Prints a Markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Callable


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def drugjax_steps(args, state_dict, images, labels,
                  xla_gradients: bool = False) -> dict[str, Callable[[], None]]:
    """Blocking closures {"eval": ..., "train": ...} for InceptionV1.

    xla_gradients swaps the model's hand-written max-pool and conv-kernel gradients for
    plain ``lax.reduce_window`` / ``lax.conv_general_dilated`` (same forward), while the
    step functions are traced.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from drugjax.models import InceptionV1
    from drugjax.models.weights import from_torchvision

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    model = InceptionV1(num_classes=1000, dtype=dtype)
    variables = jax.tree.map(jnp.asarray, from_torchvision(state_dict))
    x = jnp.asarray(images)
    y = jnp.asarray(labels)
    tx = optax.sgd(args.lr, momentum=0.9)

    @jax.jit
    def eval_step(variables, x):
        return model.apply(variables, x, train=False)

    def loss_fn(params, batch_stats, x, y, key):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats}, x, train=True,
            mutable=["batch_stats"], rngs={"dropout": key})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
        return loss.mean(), updates["batch_stats"]

    @jax.jit
    def train_step(state, x, y, key):
        params, batch_stats, opt_state = state
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, x, y, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    params, batch_stats = variables["params"], variables["batch_stats"]
    state = [(params, batch_stats, tx.init(params))]
    key = jax.random.PRNGKey(0)
    if xla_gradients:
        import flax.linen as nn
        from jax import lax

        from drugjax.models import inception

        saved = inception._flax_conv, inception.max_pool
        inception._flax_conv = lax.conv_general_dilated
        inception.max_pool = lambda x, k, s, pads: nn.max_pool(x, (k, k), (s, s), pads)
        try:  # trace and compile now, with the plain ops in place
            eval_step = eval_step.lower(variables, x).compile()
            train_step = train_step.lower(state[0], x, y, key).compile()
        finally:
            inception._flax_conv, inception.max_pool = saved

    def run_train():
        state[0], loss = train_step(state[0], x, y, key)
        loss.block_until_ready()

    return {"eval": lambda: eval_step(variables, x).block_until_ready(), "train": run_train}


def torchvision_steps(args, state_dict, images, labels) -> dict[str, Callable[[], None]]:
    """Blocking closures {"eval": ..., "train": ...} for torchvision's GoogLeNet."""
    import numpy as np
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                         num_classes=1000)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=False)
    model = model.to(memory_format=torch.channels_last)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run_eval():
        model.eval()
        with torch.inference_mode():
            model(x)

    def run_train():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return {"eval": run_eval, "train": run_train}


def measure(steps: dict[str, dict[str, Callable[[], None]]], kinds: list[str], warmup: int,
            repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds per call, frameworks interleaved call by call so that changes in
    the machine's load hit all of them alike."""
    times: dict[str, dict[str, list[float]]] = {f: {k: [] for k in kinds} for f in steps}
    for kind in kinds:
        for f in steps:
            for _ in range(warmup):  # compilation, allocator warm-up
                steps[f][kind]()
        for _ in range(repeats):
            for f in steps:
                t = time.perf_counter()
                steps[f][kind]()
                times[f][kind].append(time.perf_counter() - t)
    return {f: {k: statistics.median(v) for k, v in d.items()} for f, d in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=5, help="timed iterations per figure")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations (compile)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="drugjax compute dtype (torchvision always float32)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch intra-op threads; XLA:CPU uses one thread per core")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--xla-gradients", action="store_true",
                   help="also time drugjax with XLA's own max-pool and convolution-kernel "
                        "gradients instead of the hand-written ones (the before/after of "
                        "docs/benchmarks.md)")
    args = p.parse_args(argv)

    import numpy as np

    import jax

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch, args.size, args.size, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, size=(args.batch,)).astype(np.int32)
    # Same weights for both frameworks (torchvision keys and layouts).
    from drugjax.models.weights import random_variables, to_torchvision

    state_dict = to_torchvision(random_variables(1000))

    steps = {"drugjax": drugjax_steps(args, state_dict, images, labels)}
    if args.xla_gradients:
        steps["drugjax, XLA's own gradients"] = drugjax_steps(args, state_dict, images, labels,
                                                               xla_gradients=True)
    torch_note = "not run (--no-torch)"
    if not args.no_torch:
        try:
            import torch
            import torchvision
        except ImportError as e:
            torch_note = f"not run: {e} (install drugjax[torch] to compare)"
        else:
            steps["torchvision"] = torchvision_steps(args, state_dict, images, labels)
            torch_note = f"torch {torch.__version__}, torchvision {torchvision.__version__}, " \
                         f"{args.threads} threads, channels_last"

    kinds = ["train"] if args.train_only else ["eval", "train"]
    results = measure(steps, kinds, args.warmup, args.steps)

    cmd = "python " + " ".join([os.path.relpath(sys.argv[0])] + (argv if argv is not None else sys.argv[1:]))
    print(f"command: `{cmd}`")
    print(f"machine: {_cpu_name()}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} at end")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; XLA_FLAGS="
          f"{os.environ.get('XLA_FLAGS', '')!r}; reference: {torch_note}")
    print(f"batch {args.batch}, {args.size}x{args.size}, drugjax {args.dtype}, "
          f"median of {args.steps} after {args.warmup} warm-up, frameworks interleaved\n")
    print("| framework | " + " | ".join(f"{k} img/s" for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{args.batch / r[k]:.1f}" for k in kinds) + " |")
    if "torchvision" in results:
        ratios = [results["torchvision"][k] / results["drugjax"][k] for k in kinds]
        print("| ratio drugjax/torchvision | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()
