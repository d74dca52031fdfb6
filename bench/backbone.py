"""Backbone benchmark: images/s of InceptionV1's eval forward and of one training step
(forward, backward, SGD-momentum update) on CPU, against torchvision's GoogLeNet on the
same weights and inputs, measured in the same run with an honest protocol.

    python bench/backbone.py                          # batch 32, 224x224, float32, 2 rounds
    python bench/backbone.py --size 96                # the default training's image size
    python bench/backbone.py --write-docs             # also update docs/benchmarks.md (idle only)
    python bench/backbone.py --no-torch               # drugjax alone

Work, the same on both sides: 1000-class head, softmax cross-entropy on fixed random
labels, SGD with momentum 0.9, BatchNorm in training mode, dropout 0.2; eval is the
inference forward (drugjax folds BatchNorm into the convolutions there, as its feature
extraction does; ``--unfolded`` adds the unfolded forward). torchvision runs channels_last
with ``torch.set_num_threads(--threads)``; XLA:CPU uses one thread per core.

The protocol (issue 14):

* each framework runs in its own process, the processes alternate (drugjax, torchvision,
  drugjax, torchvision, ... for ``--rounds`` rounds), and each figure is that
  framework's best time over all its timed iterations of all rounds: separate processes
  so that one framework's idle thread pool never competes with the other's work,
  alternation so that a change in the machine's load hits both;
* the load average is recorded before and after, and the CPU time every other process
  took during the run is read from /proc and printed ("what else ran");
* a run whose 1-minute load average exceeds 1.0 at the start, or during which other
  processes took more than 10% of the machine's CPU time, is marked UNDER LOAD:
  ``--write-docs`` then refuses to write it (``--allow-load`` writes it, so marked).
  ``--wait-idle SECONDS`` waits for the load to fall first;
* every worker, of either framework, runs in the same environment: with glibc's
  huge-page tunable (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, :mod:`drugjax.runtime.huge_pages`)
  where train.py would set it for itself, since torch gains from it too (idle runs:
  eval 1.2-1.3x, training 1.0-1.08x); ``--no-huge-pages`` runs both without it. The report says which.

Prints a Markdown block: command, machine, load, what else ran, versions, the table with
the torchvision reference and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol  # noqa: E402  (bench/protocol.py, beside this file)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_SECTION = "bench/backbone.py result"

# name -> (worker, kinds it times); "drugjax-unfolded" and "drugjax-xla" are opt-in.
VARIANTS = {
    "drugjax": ("drugjax", ("eval", "train")),
    "drugjax, BatchNorm not folded": ("drugjax-unfolded", ("eval",)),
    "drugjax, XLA's own gradients": ("drugjax-xla", ("train",)),
    "torchvision": ("torchvision", ("eval", "train")),
}


def _inputs(args):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch, args.size, args.size, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, size=(args.batch,)).astype(np.int32)
    return images, labels


def drugjax_steps(args, state_dict, images, labels, *, fold: bool = True,
                  xla_gradients: bool = False) -> dict[str, Callable[[], None]]:
    """Blocking closures {"eval": ..., "train": ...} for InceptionV1.

    ``xla_gradients`` swaps the model's hand-written max-pool and conv-kernel gradients
    for plain ``lax.reduce_window`` / ``lax.conv_general_dilated`` (same forward) while
    the training step is traced.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from drugjax.runtime import xla_cpu
    from drugjax.models import InceptionV1, ops
    from drugjax.models.weights import from_torchvision

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    model = InceptionV1(num_classes=1000, dtype=dtype)
    eval_model = InceptionV1(num_classes=1000, dtype=dtype, fold_batch_norm=fold)
    variables = jax.tree.map(jnp.asarray, from_torchvision(state_dict))
    x = jnp.asarray(images)
    y = jnp.asarray(labels)
    tx = optax.sgd(args.lr, momentum=0.9)

    # Compiled as drugjax's feature extraction and training steps are (drugjax.runtime.xla_cpu).
    eval_step = xla_cpu.jit(lambda variables, x: eval_model.apply(variables, x, train=False))

    train_step = protocol.sgd_train_step(model, tx)

    params, batch_stats = variables["params"], variables["batch_stats"]
    state = [(params, batch_stats, tx.init(params))]
    key = jax.random.PRNGKey(0)
    if xla_gradients:
        import flax.linen as nn
        from jax import lax

        saved = ops.flax_conv, ops.max_pool
        ops.flax_conv = lax.conv_general_dilated
        ops.max_pool = lambda x, k, s, pads: nn.max_pool(x, (k, k), (s, s), pads)
        try:  # trace and compile now, with the plain ops in place
            train_step = train_step.lower(state[0], x, y, key).compile()
        finally:
            ops.flax_conv, ops.max_pool = saved

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

    # --dtype bfloat16: torch's CPU AMP (bfloat16 autocast, float32 parameters), the
    # counterpart of drugjax's bfloat16 compute with float32 parameters.
    amp = args.dtype == "bfloat16"

    def run_eval():
        model.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            model(x)

    def run_train():
        model.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return {"eval": run_eval, "train": run_train}


def worker(args) -> None:
    """One framework in this process: warm up, time, print one JSON line of seconds."""
    import numpy as np

    with np.load(args.weights) as f:
        state_dict = {k: f[k] for k in f.files}
    images, labels = _inputs(args)
    name = args.worker
    if name == "torchvision":
        import torch
        import torchvision

        steps = torchvision_steps(args, state_dict, images, labels)
        info = {"version": f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                           f"{args.threads} threads, channels_last"
                           + (", bfloat16 autocast" if args.dtype == "bfloat16" else "")}
    else:
        import jax

        steps = drugjax_steps(args, state_dict, images, labels, fold=name != "drugjax-unfolded",
                              xla_gradients=name == "drugjax-xla")
        from drugjax.runtime import xla_cpu

        info = {"version": f"jax {jax.__version__} on {jax.devices()[0].platform}, "
                           f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; compiler options "
                           f"{xla_cpu.options()} (drugjax.runtime.xla_cpu)"}
    times = {}
    for kind in args.kinds.split(","):
        t = time.perf_counter()
        for _ in range(args.warmup):  # compilation, allocator warm-up
            steps[kind]()
        info[f"{kind}_warmup_s"] = time.perf_counter() - t
        times[kind] = []
        for _ in range(args.steps):
            t = time.perf_counter()
            steps[kind]()
            times[kind].append(time.perf_counter() - t)
    print("RESULT " + json.dumps({"times": times, **info}), flush=True)


def _run_worker(args, name: str, kinds: tuple[str, ...], weights: str, watch: protocol.Watch) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--weights", weights,
           "--kinds", ",".join(kinds), "--batch", str(args.batch), "--size", str(args.size),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--dtype", args.dtype,
           "--lr", str(args.lr), "--threads", str(args.threads)]
    return protocol.run_worker(cmd, protocol.worker_environment(args.huge_pages), watch, name)


def run(args) -> tuple[str, bool]:
    """The alternating runs; returns (Markdown report, under load)."""
    names = ["drugjax"] + (["drugjax, BatchNorm not folded"] if args.unfolded else []) \
        + (["drugjax, XLA's own gradients"] if args.xla_gradients else [])
    torch_note = "not run (--no-torch)"
    if not args.no_torch:
        missing = protocol.torch_missing()
        if missing:
            torch_note = f"not run: {missing} (install drugjax[torch] to compare)"
        else:
            names.append("torchvision")
    wanted = ("train",) if args.train_only else ("eval",) if args.eval_only else ("eval", "train")
    allocator = protocol.allocator_line(protocol.worker_environment(args.huge_pages))

    watch, before = protocol.begin(args.wait_idle)
    best: dict[str, dict[str, float]] = {n: {} for n in names}
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        from drugjax.models.weights import random_variables, to_torchvision

        weights = str(Path(tmp) / "weights.npz")  # the same weights for every process
        np.savez(weights, **to_torchvision(random_variables(1000)))
        for r in range(args.rounds):
            for name in names:
                kinds = tuple(k for k in VARIANTS[name][1] if k in wanted)
                if not kinds:
                    continue
                res = _run_worker(args, VARIANTS[name][0], kinds, weights, watch)
                versions[VARIANTS[name][0].split("-")[0]] = res["version"]
                for kind, ts in res["times"].items():
                    best[name][kind] = min(best[name].get(kind, float("inf")), min(ts))
                print(f"round {r + 1}/{args.rounds} {name}: " + ", ".join(
                    f"{k} best {args.batch / min(ts):.1f} img/s" for k, ts in res["times"].items()), flush=True)
    watch.stop()
    if "torchvision" in versions:
        torch_note = versions["torchvision"]

    report = protocol.report_head(args.argv, watch, before, [
        f"drugjax: {versions.get('drugjax', '?')}",
        f"reference: {torch_note}",
        f"allocator: {allocator}",
        f"batch {args.batch}, {args.size}x{args.size}, drugjax {args.dtype}; each framework in its own "
        f"process, {args.rounds} alternating rounds, best of {args.steps} timed iterations per round after "
        f"{args.warmup} warm-up"])
    report += ["| framework | " + " | ".join(f"{k} img/s" for k in wanted) + " |",
               "|---|" + "---|" * len(wanted)]
    for name, r in best.items():
        report.append(f"| {name} | " + " | ".join(f"{args.batch / r[k]:.1f}" if k in r else "-"
                                                 for k in wanted) + " |")
    if "torchvision" in best:
        ratios = [best["torchvision"][k] / best["drugjax"][k] for k in wanted]
        report.append("| ratio drugjax/torchvision | " + " | ".join(f"{x:.2f}" for x in ratios) + " |")
    return "\n".join(report) + "\n", watch.under_load


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=5, help="timed iterations per framework and round")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per process (compilation)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds, one process per framework each")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="compute dtype: drugjax computes in it with float32 parameters; torchvision "
                        "runs under bfloat16 autocast (CPU AMP)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch intra-op threads; XLA:CPU uses one thread per core")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--eval-only", action="store_true", help="time the eval forward alone (e.g. --batch 256)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--unfolded", action="store_true",
                   help="also time drugjax's eval forward with BatchNorm not folded")
    p.add_argument("--xla-gradients", action="store_true",
                   help="also time drugjax's training step with XLA's own max-pool and convolution-kernel "
                        "gradients instead of the hand-written ones")
    p.add_argument("--no-huge-pages", dest="huge_pages", action="store_false",
                   help="run every worker without glibc's huge-page tunable (drugjax.runtime.huge_pages); by default "
                        "both frameworks get it where it is available")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for the 1-minute load average to fall to 1.0")
    p.add_argument("--write-docs", action="store_true",
                   help=f"write the report into docs/benchmarks.md ('{DOCS_SECTION}' markers); refused under load")
    p.add_argument("--allow-load", action="store_true",
                   help="with --write-docs, write a run taken under load (marked UNDER LOAD)")
    # Internal: one framework in a child process.
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--kinds", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.worker:
        worker(args)
        return
    report, under_load = run(args)
    print("\n" + report)
    if args.write_docs:
        # float32 batch 32 at 224 px is the protocol; other set-ups get their own section
        huge = protocol.has_huge_pages(protocol.worker_environment(args.huge_pages))
        variant = [v for v in (args.dtype != "float32" and args.dtype, args.batch != 32 and f"batch {args.batch}",
                               args.size != 224 and f"{args.size} px", args.eval_only and "eval only",
                               args.train_only and "train only", not huge and "no huge pages") if v]
        section = " ".join([DOCS_SECTION, *variant])
        protocol.write_result(DOCS, section, report, under_load, args.allow_load)


if __name__ == "__main__":
    main()
