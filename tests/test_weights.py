"""Weight import/export: torchvision keys <-> InceptionV1 variables, files, CLI, errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from drugjax.models import weights as W
from drugjax.runtime.trees import flatten

FIXTURES = Path(__file__).parent / "fixtures"


def _state_dict() -> dict[str, np.ndarray]:
    """A complete torchvision GoogLeNet state dict (seeded random values, exact key list
    and shapes recorded from torchvision in the reference fixture)."""
    spec = importlib.util.spec_from_file_location("make_googlenet_reference",
                                                  FIXTURES / "make_googlenet_reference.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    with np.load(FIXTURES / "googlenet_reference.npz", allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
    return maker.random_state_dict([(k, tuple(s)) for k, s in meta["keys"]], meta["seed"])


@pytest.fixture(scope="module")
def state_dict():
    return _state_dict()


def _assert_same(a, b):
    fa, fb = flatten(a), flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg="/".join(k))


def test_expected_keys_are_torchvision_keys(state_dict):
    # The fixture's key list was recorded from torchvision itself.
    expected = W.expected_torchvision_shapes(1000)
    assert {k: tuple(v.shape) for k, v in state_dict.items()} == expected


def test_layouts(state_dict):
    v = W.from_torchvision(state_dict)
    np.testing.assert_array_equal(v["params"]["conv1"]["conv"]["kernel"],
                                  state_dict["conv1.conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(v["params"]["inception3a"]["branch2_1"]["bn"]["scale"],
                                  state_dict["inception3a.branch2.1.bn.weight"])
    np.testing.assert_array_equal(v["batch_stats"]["inception5b"]["branch4_1"]["bn"]["var"],
                                  state_dict["inception5b.branch4.1.bn.running_var"])
    np.testing.assert_array_equal(v["params"]["fc"]["kernel"], state_dict["fc.weight"].T)
    assert "fc" not in W.from_torchvision(state_dict, include_classifier=False)["params"]


def test_ignores_counters_and_aux_heads(state_dict):
    sd = dict(state_dict)
    sd["conv1.bn.num_batches_tracked"] = np.array(7)
    sd["aux1.conv.conv.weight"] = np.zeros((128, 512, 1, 1), np.float32)
    sd["aux2.fc2.bias"] = np.zeros((1000,), np.float32)
    _assert_same(W.from_torchvision(sd), W.from_torchvision(state_dict))


def test_wrong_state_dict_lists_every_problem(state_dict):
    sd = dict(state_dict)
    del sd["inception4c.branch3.0.conv.weight"]
    sd["conv9.conv.weight"] = np.zeros((1,), np.float32)
    sd["conv2.bn.bias"] = np.zeros((65,), np.float32)
    with pytest.raises(W.WeightsError) as e:
        W.from_torchvision(sd, source="bad.pth")
    msg = str(e.value)
    assert msg.startswith("bad.pth is not a torchvision GoogLeNet state dict")
    assert "1 missing key(s): inception4c.branch3.0.conv.weight" in msg
    assert "1 unexpected key(s): conv9.conv.weight" in msg
    assert "1 shape mismatch(es): conv2.bn.bias: expected (64,), got (65,)" in msg


def test_npz_round_trip_and_cli(state_dict, tmp_path, capsys):
    v = W.from_torchvision(state_dict)
    src = W.save_npz(v, tmp_path / "a.npz")
    with np.load(src) as f:  # the file holds torchvision keys and layouts
        assert sorted(f.files) == sorted(state_dict)
        np.testing.assert_array_equal(f["conv1.conv.weight"], state_dict["conv1.conv.weight"])
    _assert_same(W.load_backbone(src), v)
    assert W.main(["convert", str(src), str(tmp_path / "b.safetensors")]) == 0
    assert W.main(["convert", str(tmp_path / "b.safetensors"), str(tmp_path / "c.npz")]) == 0
    assert "wrote" in capsys.readouterr().out
    _assert_same(W.load_backbone(tmp_path / "c.npz"), v)


def test_bad_files(state_dict, tmp_path, capsys, monkeypatch):
    sd = dict(state_dict)
    del sd["fc.bias"]
    np.savez(tmp_path / "missing.npz", **sd)
    assert W.main(["convert", str(tmp_path / "missing.npz"), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert "missing.npz is not a torchvision GoogLeNet state dict" in err
    assert "missing key(s): fc.bias" in err
    assert not (tmp_path / "out.npz").exists()

    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(W.WeightsError, match="unknown weights format '.h5'"):
        W.load_backbone(tmp_path / "x.h5")
    with pytest.raises(W.WeightsError, match="no such file"):
        W.load_backbone(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(W.WeightsError, match="junk.npz: not a readable .npz"):
        W.load_backbone(tmp_path / "junk.npz")
    (tmp_path / "w.pth").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(W.WeightsError, match="needs torch"):
        W.load_backbone(tmp_path / "w.pth")


def test_export_rejects_foreign_variables(state_dict):
    v = W.from_torchvision(state_dict)
    v["params"]["head"] = {"Dense_0": {"kernel": np.zeros((1024, 4), np.float32)}}
    with pytest.raises(W.WeightsError, match="params/head/Dense_0/kernel is not part of InceptionV1"):
        W.to_torchvision(v)


def test_pth_with_torch(state_dict, tmp_path):
    """Runs where torch is installed (the `torch` extra); skipped in CI."""
    torch = pytest.importorskip("torch")
    sd = {k: torch.from_numpy(v) for k, v in state_dict.items()}
    sd["conv1.bn.num_batches_tracked"] = torch.tensor(3)
    torch.save(sd, tmp_path / "ok.pth")
    _assert_same(W.load_backbone(tmp_path / "ok.pth"), W.from_torchvision(state_dict))
    del sd["inception3b.branch1.bn.running_mean"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(W.WeightsError, match=r"missing.pth is not a torchvision GoogLeNet "
                       r"state dict: 1 missing key\(s\): inception3b.branch1.bn.running_mean\."):
        W.load_backbone(tmp_path / "missing.pth")
    # weights_only=True: a pickled arbitrary object is refused, not executed.
    torch.save({"fc.weight": object()}, tmp_path / "evil.pth")
    with pytest.raises(W.WeightsError, match="weights_only=True"):
        W.load_backbone(tmp_path / "evil.pth")


def test_exported_npz_loads_into_torchvision(state_dict, tmp_path):
    """The export is a valid torchvision state dict; skipped where torchvision is absent."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    path = W.save_npz(W.from_torchvision(state_dict), tmp_path / "g.npz")
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    with np.load(path) as f:
        result = model.load_state_dict({k: torch.from_numpy(f[k]) for k in f.files}, strict=False)
    assert result.unexpected_keys == []
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys)


def test_random_variables_fit_the_model():
    import jax
    import jax.numpy as jnp

    from drugjax.models import InceptionV1

    v = W.random_variables(10, seed=1)
    want = jax.eval_shape(lambda: InceptionV1(num_classes=10).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))
    assert jax.tree.map(lambda a: a.shape, v) == jax.tree.map(lambda a: a.shape, want)
    _assert_same(v, W.random_variables(10, seed=1))
    assert not np.array_equal(v["params"]["conv1"]["conv"]["kernel"],
                              W.random_variables(10, seed=2)["params"]["conv1"]["conv"]["kernel"])
    assert "fc" not in W.random_variables(None)["params"]
