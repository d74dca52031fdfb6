"""GPU benchmark of the Inception-v1 training step: drugjax against PyTorch (AMP,
channels_last) on the same GPU, float32 and bfloat16, batch 128 and 256, 224 px.

    python bench/gpu_backbone.py                 # about 5 minutes on one H200 (estimate), 1 round
    python bench/gpu_backbone.py --rounds 2      # alternating twice, best of both: about 10
    python bench/gpu_backbone.py --smoke         # CPU check of the script: batch 2, 64 px, 1 step

Needs ``pip install -e ".[cuda,torch]"`` (jax with CUDA, torch and torchvision); without
torch the PyTorch rows are skipped. Issue 14 item 5: target drugjax bf16 >= 1.2x PyTorch AMP.

Work per step, the same on both sides: forward, softmax cross-entropy on fixed random
labels over 1000 classes, backward, SGD with momentum 0.9; BatchNorm in training mode,
dropout 0.2; inputs already on the device (no input pipeline). Weights: the same random
torchvision-layout weights in both.

* drugjax float32 / bfloat16: ``InceptionV1(dtype=...)`` with float32 parameters, jitted.
  On GPU the model differentiates XLA's own convolution and max-pool
  (``lax.platform_dependent``: those hand-written gradients are CPU-only; BatchNorm +
  ReLU's written-out backward, ``ops.batch_norm_relu``, runs everywhere); the script
  checks the lowered step for XLA's ``select_and_scatter`` and prints which gradient path
  ran. float32 convolutions follow JAX's default precision (TF32 on GPUs that have it).
* PyTorch float32: channels_last, ``cudnn.benchmark``, cuDNN's default TF32 convolutions.
  PyTorch AMP: the same under ``torch.autocast(dtype=bfloat16)`` (``--amp-dtype float16``
  adds a GradScaler).

Each framework runs in its own process (no two allocators on one GPU), the processes
alternate for ``--rounds`` rounds, and each figure is the best over its timed blocks
(``--steps`` steps each, synchronised at the end of the block). Prints a Markdown table
with the GPU's name, the command and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol  # noqa: E402  (bench/protocol.py, beside this file)

ROOT = Path(__file__).resolve().parents[1]


def _inputs(batch: int, size: int):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, size=(batch,)).astype(np.int32)
    return images, labels


def _time_blocks(step, sync, warmup: int, steps: int, repeats: int) -> tuple[float, float]:
    """(warm-up seconds, best seconds per step over ``repeats`` blocks of ``steps``)."""
    t = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        best = min(best, (time.perf_counter() - t) / steps)
    return warm, best


def drugjax_train_step(dtype_name: str, batch: int, size: int, state_dict: dict, lr: float = 0.01):
    """(step closure, sync closure, jitted step, its example arguments) for InceptionV1."""
    import jax
    import jax.numpy as jnp
    import optax

    from drugjax.models import InceptionV1
    from drugjax.models.weights import from_torchvision

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
    model = InceptionV1(num_classes=1000, dtype=dtype)
    variables = jax.tree.map(jnp.asarray, from_torchvision(state_dict))
    images, labels = _inputs(batch, size)
    x, y = jax.device_put(images), jax.device_put(labels)
    tx = optax.sgd(lr, momentum=0.9)

    train_step = protocol.sgd_train_step(model, tx)

    params = variables["params"]
    state = [(params, variables["batch_stats"], tx.init(params))]
    key = jax.random.PRNGKey(0)
    last = [None]

    def step():
        state[0], last[0] = train_step(state[0], x, y, key)

    def sync():
        jax.block_until_ready((state[0], last[0]))

    return step, sync, train_step, (state[0], x, y, key)


def gradient_path(train_step, example_args, platform: str) -> str:
    """Which max-pool (and with it convolution-kernel) gradient the step lowered for
    ``platform`` uses: XLA's own (``select_and_scatter`` present) or the hand-written CPU
    one. Lowers through ``jax.export`` so any platform can be checked from any machine."""
    from jax import export

    text = export.export(train_step, platforms=[platform])(*example_args).mlir_module()
    n = text.count("stablehlo.select_and_scatter")
    return f"XLA's own ({n} select_and_scatter)" if n else "hand-written CPU gradients (no select_and_scatter)"


def jax_worker(args, state_dict) -> dict:
    import jax

    dev = jax.devices()[0]
    platform = dev.platform
    out = {"framework": "drugjax", "device": getattr(dev, "device_kind", platform), "platform": platform,
           "version": f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}", "rows": []}
    for dtype in args.dtypes:
        for batch in args.batches:
            step, sync, fn, example = drugjax_train_step(dtype, batch, args.size, state_dict)
            path = gradient_path(fn, example, "cuda" if platform == "gpu" else platform)
            if platform != "cpu" and "XLA's own" not in path:
                raise SystemExit(f"drugjax on {platform} lowered the hand-written CPU gradients: {path}")
            warm, best = _time_blocks(step, sync, args.warmup, args.steps, args.repeats)
            out["rows"].append({"name": f"drugjax {dtype}", "dtype": dtype, "batch": batch, "s": best,
                                "warmup_s": warm, "gradients": path})
            print(f"drugjax {dtype} batch {batch}: {batch / best:.1f} img/s ({path}; warm-up {warm:.0f} s)",
                  file=sys.stderr, flush=True)
    return out


def torch_worker(args, state_dict) -> dict:
    import torch
    import torchvision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0) if device == "cuda" else protocol.cpu_name()
    out = {"framework": "torch", "device": name, "platform": device,
           "version": f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                      f"cuDNN {torch.backends.cudnn.version()}, CUDA {torch.version.cuda}", "rows": []}
    amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[args.amp_dtype]
    for dtype in args.dtypes:
        amp = dtype != "float32"
        label = f"PyTorch AMP {args.amp_dtype}" if amp else "PyTorch float32"
        for batch in args.batches:
            warm, best = _torch_config(args, state_dict, device, batch, amp_dtype if amp else None)
            out["rows"].append({"name": label + ", channels_last", "dtype": dtype, "batch": batch, "s": best,
                                "warmup_s": warm})
            print(f"{label} batch {batch}: {batch / best:.1f} img/s (warm-up {warm:.0f} s)", file=sys.stderr,
                  flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()  # the previous configuration's blocks
    return out


def _torch_config(args, state_dict, device: str, batch: int, amp_dtype) -> tuple[float, float]:
    """(warm-up s, best s per step) of torchvision's GoogLeNet training step; autocast to
    ``amp_dtype`` when given (float16 with a GradScaler)."""
    import numpy as np
    import torch
    import torchvision

    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False, num_classes=1000)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=False)
    model = model.to(device, memory_format=torch.channels_last).train()
    images, labels = _inputs(batch, args.size)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return _time_blocks(step, sync, args.warmup, args.steps, args.repeats)


def worker(args) -> None:
    import numpy as np

    with np.load(args.weights) as f:
        state_dict = {k: f[k] for k in f.files}
    result = (jax_worker if args.worker == "jax" else torch_worker)(args, state_dict)
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(args, which: str, weights: str, exclude: set[int]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", which, "--weights", weights,
           "--batches", ",".join(map(str, args.batches)), "--dtypes", ",".join(args.dtypes),
           "--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--amp-dtype", args.amp_dtype]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if args.smoke:
        env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)  # stderr: progress, passed on
    exclude.add(proc.pid)
    out, _ = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"the {which} worker failed (exit {proc.returncode}); its messages are above")
    return json.loads(lines[-1][len("RESULT "):])


def _gpu_names() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().replace("\n", "; ") or "nvidia-smi printed nothing"
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[128, 256])
    p.add_argument("--dtypes", type=lambda s: s.split(","), default=["float32", "bfloat16"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per configuration and round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration (compilation, autotuning)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds, one process per framework each")
    p.add_argument("--amp-dtype", choices=["bfloat16", "float16"], default="bfloat16",
                   help="PyTorch autocast dtype for the bfloat16 rows (float16 adds a GradScaler)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--smoke", action="store_true",
                   help="check the script on CPU: batch 2, 64 px, 1 step, 1 block, 1 warm-up")
    p.add_argument("--worker", choices=["jax", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.batches, args.size, args.steps, args.repeats, args.warmup = [2], 64, 1, 1, 1
    if args.worker:
        worker(args)
        return

    which = ["jax"]
    torch_note = "not run (--no-torch)"
    if not args.no_torch:
        missing = protocol.torch_missing()
        if missing:
            torch_note = f"not run: {missing} (pip install -e '.[torch]')"
        else:
            which.append("torch")

    watch = protocol.Watch().start()
    results: dict[tuple[str, int], dict] = {}
    info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        from drugjax.models.weights import random_variables, to_torchvision

        weights = str(Path(tmp) / "weights.npz")
        np.savez(weights, **to_torchvision(random_variables(1000)))
        for _ in range(args.rounds):
            for w in which:
                res = _spawn(args, w, weights, watch.exclude)
                info[w] = res
                for row in res["rows"]:
                    k = (row["name"], row["batch"])
                    if k not in results or row["s"] < results[k]["s"]:
                        results[k] = row
    watch.stop()

    argv_shown = list(argv if argv is not None else sys.argv[1:])
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + argv_shown)
    jax_info = info["jax"]
    lines = ["```", f"command: `{cmd}`",
             f"device: {jax_info['device']} ({jax_info['platform']}); nvidia-smi: {_gpu_names()}",
             f"host: {protocol.cpu_name()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M %Z')}",
             *watch.lines(),
             f"drugjax: {jax_info['version']}",
             f"reference: {info['torch']['version'] + ' on ' + info['torch']['device'] if 'torch' in info else torch_note}",
             f"{args.size}x{args.size}, training step (forward, backward, SGD momentum), best of {args.repeats} "
             f"blocks of {args.steps} steps after {args.warmup} warm-up, {args.rounds} round(s), frameworks in "
             f"separate processes",
             "```", ""]
    if args.smoke:
        lines += ["**--smoke: a check that the script runs, not a measurement.**", ""]
    lines += ["| batch | compute | drugjax img/s | PyTorch img/s | ratio | drugjax gradients |",
              "|---:|---|---:|---:|---:|---|"]
    for dtype in args.dtypes:
        torch_name = "PyTorch float32, channels_last" if dtype == "float32" else \
            f"PyTorch AMP {args.amp_dtype}, channels_last"
        for batch in args.batches:
            d = results.get((f"drugjax {dtype}", batch))
            t = results.get((torch_name, batch))
            ratio = f"{t['s'] / d['s']:.2f}" if d and t else "-"
            compute = dtype if dtype == "float32" else f"{dtype} (PyTorch: AMP {args.amp_dtype})"
            torch_rate = f"{batch / t['s']:.1f}" if t else "-"
            lines.append(f"| {batch} | {compute} | {batch / d['s']:.1f} | {torch_rate} | {ratio} | "
                         f"{d['gradients']} |")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
