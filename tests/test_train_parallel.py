"""pmap and jit(shard_map) on 4 forced CPU devices follow the 1-device loss trajectory.

Runs in a subprocess because the number of host devices is fixed when JAX starts. Every
step is blocked on: with 4 forced devices on a 2-core machine, collectives of many
in-flight steps can deadlock (DESIGN.md).
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import jax, jax.numpy as jnp, numpy as np
    from drugjax.models.heads import EndToEnd, MultitaskHeads
    from drugjax.models.tiny import TinyBackbone
    from drugjax.training.config import OptimConfig
    from drugjax.training.optim import make_optimizer
    from drugjax.training.state import TrainState
    from drugjax.training.steps import DataParallel, make_steps

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    STEPS, B = 4, 8
    kinds = rng.integers(0, 6, (STEPS, B)).astype(np.int32)
    models = {
        # the paper's heads on features (dropout off: per-device dropout keys differ)
        "heads": (MultitaskHeads(hidden=(16, 16)), rng.normal(size=(STEPS, B, 32)).astype(np.float32)),
        # end to end with BatchNorm frozen (in training mode it normalises per device)
        "end_to_end": (EndToEnd(backbone=TinyBackbone(features=8), heads=MultitaskHeads(hidden=(8,)), train_bn=False),
                       rng.normal(size=(STEPS, B, 16, 16, 3)).astype(np.float32)),
    }
    out = {}
    for name, (model, xs) in models.items():
        variables = jax.jit(model.init)(jax.random.key(0), xs[0])
        tx = make_optimizer(OptimConfig(warmup_steps=1), variables["params"], total_steps=STEPS)
        for mode, nd in (("pmap", 1), ("pmap", 4), ("shard_map", 4)):
            dp = DataParallel(mode, jax.devices()[:nd])
            state = dp.put_state(TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=jax.random.PRNGKey(1)))
            train, evaluate = make_steps(dp, relation_weight=0.5)
            losses = []
            for s in range(STEPS):
                batch = {"x": xs[s].reshape((nd, B // nd) + xs.shape[2:]), "kind": kinds[s].reshape(nd, -1),
                         "valid": np.ones((nd, B // nd), bool)}
                state, m = train(state, dp.put_batch(batch))
                jax.block_until_ready(m)
                losses.append(float(m["loss"]))
            probs = np.asarray(evaluate(state, dp.put_batch(batch))["prob"]).reshape(B, -1)
            params = [np.asarray(a).ravel().tolist() for a in jax.tree.leaves(state.params)]
            out[f"{name}/{mode}/{nd}"] = {"losses": losses, "probs": probs.tolist(), "params": params}
    json.dump(out, open(sys.argv[1], "w"))
    """
)


def test_pmap_and_shard_map_match_one_device(tmp_path):
    script = tmp_path / "parallel.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "out.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    import numpy as np

    for name in ("heads", "end_to_end"):
        ref = out[f"{name}/pmap/1"]
        assert len(set(ref["losses"])) > 1  # the model actually trains
        for mode in ("pmap", "shard_map"):
            got = out[f"{name}/{mode}/4"]
            np.testing.assert_allclose(got["losses"], ref["losses"], atol=1e-5, rtol=0, err_msg=f"{name} {mode}")
            np.testing.assert_allclose(got["probs"], ref["probs"], atol=1e-5, err_msg=f"{name} {mode}")
            for a, b in zip(got["params"], ref["params"]):
                np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{name} {mode}")


RESUME_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[2])
    import jax, numpy as np
    from train_support import make_sources, tiny_config
    import drugjax.training.loop as loop
    from drugjax.training.checkpoint import read_params

    assert jax.device_count() == 4, jax.devices()
    base = {"model.kind": "heads", "data.data_dir": os.path.join(sys.argv[1], "cache"), "steps": 6,
            "log_every": 1, "checkpoint_every": 3, "eval_every": 6, "parallel.block_every_step": True}
    reference = loop.train_and_evaluate(tiny_config(**base, **{"parallel.num_devices": 4}),
                                        os.path.join(sys.argv[1], "reference"), sources=make_sources())

    # 1 device until a SIGTERM after step 3, then resumed on 4 devices.
    write = loop.MetricWriter.write
    def write_and_stop(self, step, split, values):
        write(self, step, split, values)
        if split == "train" and step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    loop.MetricWriter.write = write_and_stop
    run = os.path.join(sys.argv[1], "run")
    stopped = loop.train_and_evaluate(tiny_config(**base, **{"parallel.num_devices": 1}), run, sources=make_sources())
    loop.MetricWriter.write = write
    resumed = loop.train_and_evaluate(tiny_config(**base, **{"parallel.num_devices": 4}), run, sources=make_sources())
    flat = lambda run_dir: [np.asarray(a).ravel().tolist() for a in jax.tree.leaves(read_params(run_dir)["params"])]
    json.dump({"stopped": stopped["step"], "resumed": resumed["step"], "devices": resumed["devices"],
               "reference": flat(os.path.join(sys.argv[1], "reference")), "run": flat(run)}, open(sys.argv[3], "w"))
    """
)


def test_a_run_saved_on_one_device_resumes_on_four(tmp_path):
    """The data iterator's state holds the global batch, not the device layout."""
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), here, str(tmp_path / "out.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["stopped"] == 3 and out["resumed"] == 6 and out["devices"] == 4
    import numpy as np

    for a, b in zip(out["run"], out["reference"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
