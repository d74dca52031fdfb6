"""A few data-parallel training steps in one of several JAX processes (or in one alone).

Driven by tests/test_multiprocess.py; also runnable by hand, e.g. two processes with two
forced CPU devices each on this machine::

    export XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu
    python tests/multiprocess_train.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 --out p0.json &
    python tests/multiprocess_train.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1 --out p1.json

and the one-process reference with four devices (``--num-processes 1``,
``--xla_force_host_platform_device_count=4``).

Each process reads its own rows of every global batch with
``train_loader(process_index=..., process_count=...)`` and feeds them to the pmap-wrapped
step of drugjax.training.steps, whose gradients and BatchNorm statistics are averaged
over all devices of all processes (gloo collectives on CPU). The model is the tiny
end-to-end one with synchronised BatchNorm in training mode and dropout on, so every
cross-device path of the step is exercised. (The dropout here is flax's, keyed per device
by ``lax.axis_index``: a multi-host pmap numbers the devices process by process, as
``jax.devices()`` lists them, so 2 x 2 devices get the keys of 1 x 4.) Writes JSON: the loss per step, this
process's batch indices, the final parameters and batch statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (several processes)")
    ap.add_argument("--num-processes", type=int, default=1)
    ap.add_argument("--process-id", type=int, default=0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir", default=None, help="resume from / save to orbax checkpoints here")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="save a checkpoint after this step, write OUT.saved, then wait to be killed")
    args = ap.parse_args()

    import jax

    if args.num_processes > 1:
        # CPU devices of different processes talk through gloo; it must be chosen before
        # the backend starts, i.e. before jax.distributed.initialize.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                                   initialization_timeout=120)
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_support import make_sources

    from drugjax.data import pipeline
    from drugjax.models.heads import EndToEnd, MultitaskHeads
    from drugjax.models.tiny import TinyBackbone
    from drugjax.training.checkpoint import Checkpoints
    from drugjax.training.config import OptimConfig
    from drugjax.training.optim import make_optimizer
    from drugjax.training.state import TrainState
    from drugjax.training.steps import AXIS, DataParallel, make_steps

    assert jax.device_count() == 4, jax.devices()
    loader = pipeline.train_loader(
        make_sources(), image_size=16, per_device_batch=2, num_devices=jax.local_device_count(), seed=0,
        process_index=jax.process_index(), process_count=jax.process_count(), threads=0,
    )
    model = EndToEnd(backbone=TinyBackbone(features=8, bn_axis_name=AXIS),
                     heads=MultitaskHeads(hidden=(8,), dropout_rate=0.25))
    # Every process initialises the same state from the same seed.
    variables = jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    tx = make_optimizer(OptimConfig(warmup_steps=1), variables["params"], total_steps=args.steps)
    parallel = DataParallel("pmap")  # all devices of all processes
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=jax.random.PRNGKey(1))
    start = 0
    ckpts = None
    if args.checkpoint_dir:
        # As drugjax.training.loop does it. Every host's data position is the same global
        # batch number (each reads its rows of it), so one saved position serves all.
        ckpts = Checkpoints(args.checkpoint_dir, best_metric="loss")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), state.to_tree())
        restored = ckpts.restore_latest(abstract)
        if restored is not None:
            start, tree, meta, _ = restored
            state = state.from_tree(tree)
            loader.set_state(meta["data_state"])
    state = parallel.put_state(state)
    train, evaluate = make_steps(parallel, relation_weight=0.5)
    losses, indices = [], []
    for step in range(start + 1, args.steps + 1):
        batch = next(loader)
        inputs = parallel.put_batch({"x": batch["image"], "kind": batch["kind"], "valid": batch["valid"]})
        state, metrics = train(state, inputs)
        jax.block_until_ready(metrics)  # one step in flight: forced devices on few cores
        losses.append(float(metrics["loss"]))
        indices.append(batch["index"].reshape(-1).tolist())
        if step == args.stop_after:
            ckpts.save(step, state.to_tree(), data_state=loader.get_state(), config={})
            ckpts.wait()
            with open(args.out + ".saved", "w") as f:
                f.write(str(step))
            while True:  # killed here, as a preempted job would be
                time.sleep(1)
    # The eval step on this process's rows of the last batch, read back as the loop does.
    probs = jax.device_get(evaluate(state, inputs)["prob"])
    flat = lambda tree: [np.asarray(a).ravel().tolist() for a in jax.tree.leaves(jax.device_get(tree))]  # noqa: E731
    out = {"process_index": jax.process_index(), "process_count": jax.process_count(),
           "local_devices": jax.local_device_count(), "start": start, "losses": losses, "indices": indices,
           "last_batch_probs": np.asarray(probs).reshape(-1, np.shape(probs)[-1]).tolist(),
           "params": flat(state.params), "batch_stats": flat(state.batch_stats)}
    with open(args.out, "w") as f:
        json.dump(out, f)
    if ckpts is not None:
        ckpts.close()
    if args.num_processes > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
