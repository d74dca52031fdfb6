"""Every convolution of InceptionV1's training step, one at a time: drugjax (XLA:CPU)
against torch (oneDNN) on the same shapes. What the whole-step ratios of
bench/backbone.py are made of, and a floor under them: a step cannot be faster than its
convolutions.

    python bench/convolutions.py                  # 224 px, batch 32, 2 alternating rounds
    python bench/convolutions.py --write-docs     # also update docs/benchmarks.md (idle only)

For each convolution: the forward, and the backward a training step needs (input and
kernel gradients; the kernel gradient alone for conv1, whose input is the image).
drugjax times the model's own convolutions (``ops.conv2d`` with its gradient,
compiled with ``drugjax.runtime.xla_cpu``'s options, each inception block's three 1x1
convolutions of the block input fused into one as the model computes them); torch times
torchvision's (three separate 1x1 convolutions), channels_last, ``--threads`` threads,
the forward in grad mode as in training, the backward as ``torch.autograd.grad`` of a
kept forward. Each framework runs in its own process, the processes alternate and each
figure is the best over all rounds; load and other processes are recorded and a run
under load is not written to the docs (bench/protocol.py, as bench/backbone.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol  # noqa: E402  (bench/protocol.py, beside this file)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_SECTION = "bench/convolutions.py result"
GROUPS = ("conv1 7x7/2", "conv2 1x1", "conv3 3x3", "inception 1x1 of the block input",
          "inception 3x3 (both branches)", "inception pool projections 1x1")


def convolutions(size: int, fused: bool) -> list[tuple[str, str, int, int, int, int, int, int]]:
    """(group, name, input size, in channels, out channels, kernel, stride, padding) of
    every convolution of the network at ``size`` px, in network order; ``fused`` gives
    each inception block's three 1x1 convolutions of the block input as one."""
    from drugjax.models.inception import INCEPTION_CFG

    def pooled(s: int, window: int = 3) -> int:  # MaxPool2d(window, 2, ceil_mode=True)
        return math.ceil((s - window) / 2) + 1

    stem = (size + 2 * 3 - 7) // 2 + 1
    s2 = pooled(stem)
    block_size = {"3": pooled(s2), "4": pooled(pooled(s2)), "5": pooled(pooled(pooled(s2)), 2)}
    rows = [(GROUPS[0], "conv1", size, 3, 64, 7, 2, 3), (GROUPS[1], "conv2", s2, 64, 64, 1, 1, 0),
            (GROUPS[2], "conv3", s2, 64, 192, 3, 1, 1)]
    cin = 192
    for name, (c1, c3r, c3, c5r, c5, pool_proj) in INCEPTION_CFG.items():
        s = block_size[name[len("inception")]]
        if fused:
            rows.append((GROUPS[3], f"{name}.1x1", s, cin, c1 + c3r + c5r, 1, 1, 0))
        else:
            rows += [(GROUPS[3], f"{name}.{branch}", s, cin, c, 1, 1, 0)
                     for branch, c in (("branch1", c1), ("branch2_0", c3r), ("branch3_0", c5r))]
        rows += [(GROUPS[4], f"{name}.branch2_1", s, c3r, c3, 3, 1, 1),
                 (GROUPS[4], f"{name}.branch3_1", s, c5r, c5, 3, 1, 1),
                 (GROUPS[5], f"{name}.branch4_1", s, cin, pool_proj, 1, 1, 0)]
        cin = c1 + c3 + c5 + pool_proj
    return rows


def _best(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def drugjax_times(args) -> dict[str, dict[str, float]]:
    import jax
    import numpy as np

    from drugjax.runtime import xla_cpu
    from drugjax.models.ops import conv2d

    rng = np.random.default_rng(0)
    out = {}
    for _, name, s, cin, cout, k, stride, pad in convolutions(args.size, fused=True):
        x = jax.numpy.asarray(rng.normal(size=(args.batch, s, s, cin)).astype(np.float32))
        w = jax.numpy.asarray((rng.normal(size=(k, k, cin, cout)) / math.sqrt(k * k * cin)).astype(np.float32))
        forward = xla_cpu.jit(lambda x, w: conv2d(x, w, stride, pad))
        g = jax.numpy.ones_like(forward(x, w))
        if name == "conv1":  # the image needs no gradient
            backward = xla_cpu.jit(lambda x, w, g: jax.vjp(lambda w: conv2d(x, w, stride, pad), w)[1](g))
        else:
            backward = xla_cpu.jit(lambda x, w, g: jax.vjp(lambda x, w: conv2d(x, w, stride, pad), x, w)[1](g))
        out[name] = {"forward": _best(lambda: forward(x, w).block_until_ready(), args.warmup, args.steps),
                     "backward": _best(lambda: jax.block_until_ready(backward(x, w, g)), args.warmup, args.steps)}
    return out


def torch_times(args) -> dict[str, dict[str, float]]:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {}
    for _, name, s, cin, cout, k, stride, pad in convolutions(args.size, fused=False):
        conv = torch.nn.Conv2d(cin, cout, k, stride, pad, bias=False).to(memory_format=torch.channels_last)
        x = torch.randn(args.batch, cin, s, s).to(memory_format=torch.channels_last)
        x.requires_grad_(name != "conv1")
        y = conv(x)
        g = torch.ones_like(y)
        wrt = [conv.weight] + ([x] if name != "conv1" else [])
        out[name] = {"forward": _best(lambda: conv(x), args.warmup, args.steps),
                     "backward": _best(lambda: torch.autograd.grad(y, wrt, g, retain_graph=True),
                                       args.warmup, args.steps)}
    return out


def worker(args) -> None:
    if args.worker == "torch":
        import torch

        times, version = torch_times(args), f"torch {torch.__version__}, {args.threads} threads, channels_last"
    else:
        import jax

        from drugjax.runtime import xla_cpu

        times = drugjax_times(args)
        version = f"jax {jax.__version__} on {jax.devices()[0].platform}, compiler options {xla_cpu.options()}"
    print("RESULT " + json.dumps({"times": times, "version": version}), flush=True)


def _run_worker(args, name: str, watch: protocol.Watch) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--batch", str(args.batch),
           "--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads)]
    return protocol.run_worker(cmd, protocol.worker_environment(args.huge_pages), watch, name)


def group_totals(times: dict[str, dict[str, float]], fused: bool, size: int) -> dict[str, dict[str, float]]:
    """Seconds per group and kind (forward, backward), summed over its convolutions."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"forward": 0.0, "backward": 0.0})
    for group, name, *_ in convolutions(size, fused):
        for kind in ("forward", "backward"):
            totals[group][kind] += times[name][kind]
    return totals


def table(best: dict[str, dict[str, dict[str, float]]], size: int) -> list[str]:
    frameworks = list(best)
    totals = {f: group_totals(best[f], fused=f == "drugjax", size=size) for f in frameworks}
    head = " | ".join(f"{f} {kind} ms" for kind in ("forward", "backward") for f in frameworks)
    ratio = "torch" in frameworks
    lines = [f"| convolutions | {head} |" + (" forward speed drugjax/torch | backward speed drugjax/torch |" if ratio else ""),
             "|---|" + "---|" * (2 * len(frameworks) + 2 * ratio)]
    rows = [(g, {f: totals[f][g] for f in frameworks}) for g in GROUPS]
    rows.append(("**all**", {f: {kind: sum(t[kind] for t in totals[f].values()) for kind in ("forward", "backward")}
                             for f in frameworks}))
    for label, per in rows:
        cells = [f"{1e3 * per[f][kind]:.1f}" for kind in ("forward", "backward") for f in frameworks]
        if ratio:  # torch's time over drugjax's: > 1 where drugjax is faster
            cells += [f"{per['torch'][kind] / per['drugjax'][kind]:.2f}" for kind in ("forward", "backward")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def run(args) -> tuple[str, bool]:
    """The alternating runs; returns (Markdown report, under load)."""
    names = ["drugjax"]
    missing = protocol.torch_missing()
    if not missing:
        names.append("torch")
    watch, before = protocol.begin(args.wait_idle)
    best: dict[str, dict[str, dict[str, float]]] = {}
    versions = {}
    for r in range(args.rounds):
        for name in names:
            res = _run_worker(args, name, watch)
            versions[name] = res["version"]
            mine = best.setdefault(name, {})
            for conv, kinds in res["times"].items():
                for kind, t in kinds.items():
                    mine.setdefault(conv, {})[kind] = min(mine.get(conv, {}).get(kind, math.inf), t)
            print(f"round {r + 1}/{args.rounds} {name} done", flush=True)
    watch.stop()
    report = protocol.report_head(args.argv, watch, before, [
        f"drugjax: {versions['drugjax']}",
        f"reference: {versions.get('torch', f'not run: {missing} (install drugjax[torch] to compare)')}",
        f"allocator: {protocol.allocator_line(protocol.worker_environment(args.huge_pages))}",
        f"batch {args.batch}, {args.size}x{args.size}, float32; each framework in its own process, "
        f"{args.rounds} alternating rounds, best of {args.steps} timed calls per convolution after "
        f"{args.warmup} warm-up"])
    report += table(best, args.size)
    return "\n".join(report) + "\n", watch.under_load


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=5, help="timed calls per convolution, framework and round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per convolution (compilation)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds, one process per framework each")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch intra-op threads; XLA:CPU uses one thread per core")
    p.add_argument("--no-huge-pages", dest="huge_pages", action="store_false",
                   help="run every worker without glibc's huge-page tunable (drugjax.runtime.huge_pages)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for the 1-minute load average to fall to 1.0")
    p.add_argument("--write-docs", action="store_true",
                   help=f"write the report into docs/benchmarks.md ('{DOCS_SECTION}' markers); refused under load")
    p.add_argument("--allow-load", action="store_true",
                   help="with --write-docs, write a run taken under load (marked UNDER LOAD)")
    p.add_argument("--worker", choices=["drugjax", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.worker:
        worker(args)
        return
    report, under_load = run(args)
    print("\n" + report)
    if args.write_docs:
        variant = [v for v in (args.batch != 32 and f"batch {args.batch}", args.size != 224 and f"{args.size} px",
                               not protocol.has_huge_pages(protocol.worker_environment(args.huge_pages))
                               and "no huge pages") if v]
        protocol.write_result(DOCS, " ".join([DOCS_SECTION, *variant]), report, under_load, args.allow_load)


if __name__ == "__main__":
    main()
