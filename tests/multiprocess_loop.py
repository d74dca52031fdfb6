"""train_and_evaluate (the train.py loop) in one of two JAX processes on this machine.

Driven by tests/test_multiprocess.py: ``parallel.distributed=true`` with a loopback
coordinator, two forced CPU devices per process, the tiny end-to-end model. With
``--hang-after-checkpoint K`` the process stops after writing the step-K checkpoint
(marker file OUT.saved) and waits to be killed, as a preempted job would be. Writes JSON:
the step the run restored (None when it started afresh), its final step and the final
parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--process-id", type=int, required=True)
    ap.add_argument("--root", required=True, help="run directory and data cache go here")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hang-after-checkpoint", type=int, default=None)
    args = ap.parse_args()

    import jax
    import numpy as np

    # CPU devices of different processes need gloo; the loop calls jax.distributed.initialize.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_support import make_sources, tiny_config

    import drugjax.training.loop as loop
    from drugjax.training.checkpoint import Checkpoints, read_params

    restored = []
    restore_latest = Checkpoints.restore_latest

    def recording_restore(self, *a, **kw):
        out = restore_latest(self, *a, **kw)
        restored.append(None if out is None else out[0])
        return out

    Checkpoints.restore_latest = recording_restore
    if args.hang_after_checkpoint is not None:
        save = Checkpoints.save

        def save_then_hang(self, step, *a, **kw):
            save(self, step, *a, **kw)
            if step == args.hang_after_checkpoint:
                self.wait()
                with open(args.out + ".saved", "w") as f:
                    f.write(str(step))
                while True:
                    time.sleep(1)

        Checkpoints.save = save_then_hang

    cfg = tiny_config(**{
        "data.data_dir": os.path.join(args.root, "cache"), "steps": 6, "log_every": 1, "checkpoint_every": 3,
        "eval_every": 6, "parallel.block_every_step": True, "parallel.distributed": True,
        "parallel.coordinator_address": args.coordinator, "parallel.num_processes": 2,
        "parallel.process_id": args.process_id,
    })
    run = os.path.join(args.root, "run")
    result = loop.train_and_evaluate(cfg, run, sources=make_sources())
    params = [np.asarray(a).ravel().tolist() for a in jax.tree.leaves(read_params(run)["params"])]
    with open(args.out, "w") as f:
        json.dump({"restored": restored, "step": result["step"], "params": params}, f)


if __name__ == "__main__":
    main()
