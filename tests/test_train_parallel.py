"""pmap and jit(shard_map) on 4 forced CPU devices follow the 1-device loss trajectory,
with BatchNorm in training mode too when it is synchronised (``bn_axis_name``), and
dropout on when its masks are drawn for the global batch (``dropout_axis_name``).

Runs in a subprocess because the number of host devices is fixed when JAX starts. Every
step is blocked on: with 4 forced devices on a 2-core machine, collectives of many
in-flight steps can deadlock (seen on this project's 2-core machines).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import jax, jax.numpy as jnp, numpy as np
    from drugjax.models.heads import EndToEnd, MultitaskHeads
    from drugjax.models.tiny import TinyBackbone
    from drugjax.training.config import OptimConfig
    from drugjax.training.optim import make_optimizer
    from drugjax.training.state import TrainState
    from drugjax.training.steps import AXIS, DataParallel, make_steps

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    STEPS, B = 4, 8
    kinds = rng.integers(0, 6, (STEPS, B)).astype(np.int32)
    models = {
        # the paper's heads on features, dropout drawn for the global batch
        "heads": (MultitaskHeads(hidden=(16, 16), dropout_rate=0.25, dropout_axis_name=AXIS),
                  rng.normal(size=(STEPS, B, 32)).astype(np.float32)),
        # end to end with BatchNorm frozen (running statistics while training)
        "end_to_end": (EndToEnd(backbone=TinyBackbone(features=8), heads=MultitaskHeads(hidden=(8,)), train_bn=False),
                       rng.normal(size=(STEPS, B, 16, 16, 3)).astype(np.float32)),
    }
    images = rng.normal(size=(STEPS, B, 16, 16, 3)).astype(np.float32)
    # BatchNorm in training mode with its statistics averaged over the devices, and
    # dropout with the global batch's masks: the whole step as on one device.
    models["bn_sync"] = (EndToEnd(backbone=TinyBackbone(features=8, bn_axis_name=AXIS),
                                  heads=MultitaskHeads(hidden=(8,), dropout_rate=0.25, dropout_axis_name=AXIS)), images)
    # Per-device BatchNorm statistics (dropout off) ...
    models["bn_per_device"] = (EndToEnd(backbone=TinyBackbone(features=8), heads=MultitaskHeads(hidden=(8,))), images)
    # ... and per-device dropout keys: each leaves the one-device trajectory.
    models["dropout_per_device"] = (MultitaskHeads(hidden=(16, 16), dropout_rate=0.25), models["heads"][1])
    out = {}
    for name in sys.argv[2].split(","):  # the models to run
        model, xs = models[name]
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
            flat = lambda tree: [np.asarray(a).ravel().tolist() for a in jax.tree.leaves(tree)]
            out[f"{name}/{mode}/{nd}"] = {"losses": losses, "probs": probs.tolist(), "params": flat(state.params),
                                          "batch_stats": flat(state.batch_stats)}
    json.dump(out, open(sys.argv[1], "w"))
    """
)


def _run_on_four_devices(tmp_path, script_text: str, *args: str) -> dict:
    script = tmp_path / "script.py"
    script.write_text(script_text)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "out.json"), *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text())


def _max_difference(a: dict, b: dict, key: str) -> float:
    if key == "losses" or key == "probs":
        return float(np.max(np.abs(np.asarray(a[key]) - np.asarray(b[key]))))
    return max((float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a[key], b[key])), default=0.0)


KEYS = ("losses", "probs", "params", "batch_stats")


def _assert_match_one_device(out: dict, name: str) -> None:
    ref = out[f"{name}/pmap/1"]
    assert len(set(ref["losses"])) > 1  # the model actually trains
    for mode in ("pmap", "shard_map"):
        got = out[f"{name}/{mode}/4"]
        for key in KEYS:
            assert len(got[key]) == len(ref[key])
            diff = _max_difference(got, ref, key)
            print(f"{name} {mode} {key}: max |4 devices - 1 device| = {diff:.2e}")
            assert diff <= 1e-5, f"{name} {mode} {key}: {diff}"


def test_pmap_and_shard_map_match_one_device(tmp_path):
    """The heads with dropout (masks of the global batch), and end to end with BatchNorm
    frozen."""
    out = _run_on_four_devices(tmp_path, SCRIPT, "heads,end_to_end")
    for name in ("heads", "end_to_end"):
        _assert_match_one_device(out, name)


def test_synced_batch_norm_matches_one_device_and_per_device_statistics_do_not(tmp_path):
    """End to end with BatchNorm in training mode and dropout on: synchronised statistics
    (bn_axis_name) and global dropout masks give the one-device step; per-device
    statistics, or per-device dropout keys, do not."""
    out = _run_on_four_devices(tmp_path, SCRIPT, "bn_sync,bn_per_device,dropout_per_device")
    _assert_match_one_device(out, "bn_sync")
    assert out["bn_sync/pmap/1"]["batch_stats"] and out["bn_per_device/pmap/1"]["batch_stats"]
    # Per-device BatchNorm statistics, or per-device dropout keys, leave the 1-device
    # trajectory: the switches are what make the equality above hold.
    for name, differing in (("bn_per_device", KEYS), ("dropout_per_device", ("losses", "probs", "params"))):
        for mode in ("pmap", "shard_map"):
            got, ref = out[f"{name}/{mode}/4"], out[f"{name}/pmap/1"]
            for key in differing:
                diff = _max_difference(got, ref, key)
                print(f"{name} {mode} {key}: max |4 devices - 1 device| = {diff:.2e}")
                assert diff > 1e-3, f"{name} {mode} {key}: {diff}"


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


INCEPTION_BN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from drugjax.models.inception import BatchNorm
    from drugjax.training.steps import AXIS

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 3, 3, 5)) * 2 + 1).astype(np.float32)  # batch 8 = 4 devices x 2
    w = rng.normal(size=x.shape).astype(np.float32)  # a loss sum(y * w) to differentiate
    variables = {"params": {"scale": rng.uniform(0.5, 2, 5).astype(np.float32), "bias": rng.normal(size=5).astype(np.float32)},
                 "batch_stats": {"mean": rng.normal(size=5).astype(np.float32), "var": rng.uniform(0.5, 2, 5).astype(np.float32)}}

    def run(bn, v, x, w):
        y, updated = bn.apply(v, x, mutable=["batch_stats"])
        dx = jax.grad(lambda x_: jnp.sum(bn.apply(v, x_, mutable=["batch_stats"])[0] * w))(x)
        return {"y": y, "dx": dx, "stats": updated["batch_stats"]}

    single = run(BatchNorm(use_running_average=False), variables, x, w)
    out = {"single": jax.tree.map(lambda a: np.asarray(a).tolist(), single)}
    for name, axis in (("synced", AXIS), ("per_device", None)):
        bn = BatchNorm(use_running_average=False, axis_name=axis)
        got = jax.pmap(lambda v, x, w: run(bn, v, x, w), axis_name=AXIS, in_axes=(None, 0, 0))(
            variables, x.reshape(4, 2, 3, 3, 5), w.reshape(4, 2, 3, 3, 5))
        got = {"y": np.asarray(got["y"]).reshape(x.shape), "dx": np.asarray(got["dx"]).reshape(x.shape),
               "stats": got["stats"]}  # stats: one copy per device, (4, 5) each
        out[name] = jax.tree.map(lambda a: np.asarray(a).tolist(), got)
    json.dump(out, open(sys.argv[1], "w"))
    """
)


def test_inception_batch_norm_synced_over_devices_equals_one_batch(tmp_path):
    """torch-exact BatchNorm with axis_name: 4 devices x 2 examples compute the outputs,
    input gradients and running statistics (unbiased with the global count) of one
    device with all 8."""
    out = _run_on_four_devices(tmp_path, INCEPTION_BN_SCRIPT)
    single, synced, per_device = out["single"], out["synced"], out["per_device"]
    for key in ("y", "dx"):
        diff = float(np.max(np.abs(np.asarray(synced[key]) - np.asarray(single[key]))))
        print(f"inception BatchNorm synced {key}: max |4 devices - 1 device| = {diff:.2e}")
        assert diff <= 1e-5, (key, diff)
        assert np.max(np.abs(np.asarray(per_device[key]) - np.asarray(single[key]))) > 1e-2, key
    for stat in ("mean", "var"):
        on_devices = np.asarray(synced["stats"][stat])
        assert on_devices.shape == (4, 5)
        diff = float(np.max(np.abs(on_devices - np.asarray(single["stats"][stat])[None])))
        print(f"inception BatchNorm synced running {stat}: max |4 devices - 1 device| = {diff:.2e}")
        assert diff <= 1e-6, (stat, diff)
    # Per-device statistics give each device other running statistics.
    assert np.ptp(np.asarray(per_device["stats"]["var"]), axis=0).max() > 1e-2
