"""Import and export of InceptionV1 weights in torchvision's GoogLeNet format.

* ``from_torchvision(state_dict)`` maps torchvision keys (``inception3a.branch2.1.conv.weight``)
  to Flax variables ``{"params", "batch_stats"}`` (conv OIHW -> HWIO, linear (out, in) ->
  (in, out)); ``to_torchvision(variables)`` is the inverse.
* ``load_backbone(path)`` reads a torchvision ``.pth`` (needs torch, read with
  ``torch.load(weights_only=True)``, never plain pickle), a ``.safetensors`` or an ``.npz``.
* ``save_npz(variables, path)`` writes an ``.npz`` with torchvision keys and layouts, so the
  file is readable by ``load_backbone`` and, after ``torch.from_numpy``, by
  ``torchvision.models.googlenet(...).load_state_dict(..., strict=False)``.

Command line::

    python -m drugjax.models.weights convert googlenet-1378be20.pth googlenet.npz
    python -m drugjax.models.weights convert googlenet.npz googlenet.safetensors

Keys that are ignored on import, on purpose: ``*.num_batches_tracked`` (a counter, not a
weight) and ``aux1.*`` / ``aux2.*`` (torchvision's training-only auxiliary classifiers,
which it also drops when ``aux_logits=False``). Any other difference from the expected
key set or shapes is an error that lists every missing key, unexpected key and shape
mismatch.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from drugjax.errors import UserError, print_error
from drugjax.models.inception import InceptionV1
from drugjax.runtime.trees import flatten

Variables = dict[str, Any]

_IGNORED = re.compile(r"(^|\.)num_batches_tracked$|^aux[12]\.")
_LEAF_TO_TORCH = {
    ("conv", "kernel"): "conv.weight",
    ("bn", "scale"): "bn.weight",
    ("bn", "bias"): "bn.bias",
    ("bn", "mean"): "bn.running_mean",
    ("bn", "var"): "bn.running_var",
    ("fc", "kernel"): "fc.weight",
    ("fc", "bias"): "fc.bias",
}
_TORCH_TO_LEAF = {v: k for k, v in _LEAF_TO_TORCH.items()}


class WeightsError(UserError, ValueError):
    """A weights file or state dict does not fit InceptionV1."""


def _module_to_torch(name: str) -> str:
    # Flax module "branch2_1" is torch nn.Sequential "branch2" item 1.
    return re.sub(r"^(branch\d)_(\d)$", r"\1.\2", name)


def _module_from_torch(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        if out and re.fullmatch(r"\d", part) and re.fullmatch(r"branch\d", out[-1]):
            out[-1] = f"{out[-1]}_{part}"
        else:
            out.append(part)
    return out


def _flax_path_to_torch(path: tuple[str, ...]) -> str:
    """("params", "inception3a", "branch2_1", "conv", "kernel") -> torchvision key."""
    modules, leaf = path[1:-2], path[-2:]
    prefix = ".".join(_module_to_torch(m) for m in modules)
    torch_leaf = _LEAF_TO_TORCH[leaf]
    return f"{prefix}.{torch_leaf}" if prefix else torch_leaf


def _to_torch_layout(key: str, value: np.ndarray) -> np.ndarray:
    if key.endswith("conv.weight"):
        return np.transpose(value, (3, 2, 0, 1))  # HWIO -> OIHW
    if key == "fc.weight":
        return np.transpose(value)  # (in, out) -> (out, in)
    return value


def _from_torch_layout(key: str, value: np.ndarray) -> np.ndarray:
    if key.endswith("conv.weight"):
        return np.transpose(value, (2, 3, 1, 0))  # OIHW -> HWIO
    if key == "fc.weight":
        return np.transpose(value)
    return value


@functools.lru_cache(maxsize=8)
def expected_torchvision_shapes(num_classes: int | None) -> dict[str, tuple[int, ...]]:
    """torchvision key -> torch-layout shape for ``InceptionV1(num_classes)``.

    Derived from the Flax module itself (``jax.eval_shape``, no compute), so it cannot
    drift from the architecture.
    """
    import jax
    import jax.numpy as jnp

    shapes = jax.eval_shape(
        lambda: InceptionV1(num_classes=num_classes).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3), jnp.float32), train=False
        )
    )
    out: dict[str, tuple[int, ...]] = {}
    for path, leaf in flatten(shapes).items():
        key = _flax_path_to_torch(path)
        out[key] = tuple(_to_torch_layout(key, np.empty(leaf.shape, np.int8)).shape)
    return out


def _fmt_list(items: list[str], limit: int = 30) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def from_torchvision(
    state_dict: Mapping[str, Any],
    *,
    include_classifier: bool = True,
    source: str = "state dict",
) -> Variables:
    """Convert a torchvision GoogLeNet state dict to InceptionV1 variables.

    Args:
      state_dict: torchvision key -> array (numpy, or anything ``np.asarray`` accepts).
      include_classifier: map ``fc.*`` to the ``fc`` Dense layer when present (its output
        size sets ``num_classes``); False drops them (a features-only backbone).
      source: name of the file the dict came from, used in error messages.

    Returns:
      ``{"params": ..., "batch_stats": ...}`` of float32 numpy arrays.

    Raises:
      WeightsError: listing every missing key, unexpected key and shape mismatch.
    """
    arrays = {k: v for k, v in state_dict.items() if not _IGNORED.search(k)}
    has_fc = "fc.weight" in arrays
    num_classes = None
    if has_fc and include_classifier:
        num_classes = int(np.shape(arrays["fc.weight"])[0])
    if not include_classifier:
        arrays = {k: v for k, v in arrays.items() if not k.startswith("fc.")}
    expected = expected_torchvision_shapes(num_classes)
    missing = [k for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k not in expected]
    mismatched = [
        f"{k}: expected {expected[k]}, got {tuple(np.shape(arrays[k]))}"
        for k in expected
        if k in arrays and tuple(np.shape(arrays[k])) != expected[k]
    ]
    if missing or unexpected or mismatched:
        parts = [f"{source} is not a torchvision GoogLeNet state dict:"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_fmt_list(missing)}.")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_fmt_list(unexpected)}.")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_fmt_list(mismatched)}.")
        parts.append(
            "Use the weights of torchvision.models.googlenet (e.g. googlenet-1378be20.pth) "
            "or a file written by drugjax.models.weights.save_npz."
        )
        raise WeightsError(" ".join(parts))

    variables: Variables = {"params": {}, "batch_stats": {}}
    for key in expected:
        parts = key.split(".")
        modules, leaf = _module_from_torch(parts[:-2]), tuple(_TORCH_TO_LEAF[".".join(parts[-2:])])
        collection = "batch_stats" if leaf[1] in ("mean", "var") else "params"
        node = variables[collection]
        for m in modules + [leaf[0]]:
            node = node.setdefault(m, {})
        value = np.asarray(arrays[key], dtype=np.float32)
        node[leaf[1]] = _from_torch_layout(key, value)
    return variables


def to_torchvision(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Inverse of :func:`from_torchvision`: InceptionV1 variables -> torchvision state dict
    (numpy, torch layouts, without ``num_batches_tracked``)."""
    flat = {}
    for collection in ("params", "batch_stats"):
        if collection not in variables:
            raise WeightsError(f"variables have no {collection!r} collection; pass the "
                               "full {'params', 'batch_stats'} of InceptionV1.")
        flat.update(flatten(variables[collection], (collection,)))
    out = {}
    for path, value in flat.items():
        if path[-2:] not in _LEAF_TO_TORCH:
            raise WeightsError(f"variable {'/'.join(path)} is not part of InceptionV1; "
                               "export only the backbone's variables.")
        key = _flax_path_to_torch(path)
        out[key] = _to_torch_layout(key, np.asarray(value, dtype=np.float32))
    # Validate the result the same way an import would.
    from_torchvision(out, source="exported variables")
    return out


def random_variables(num_classes: int | None = None, seed: int = 0) -> Variables:
    """Randomly initialised InceptionV1 variables, drawn with numpy in about a second.

    He-normal convolutions, identity BatchNorm (scale 1, bias 0, mean 0, var 1), and for
    a classifier normal(0, 0.01) weights with zero bias; same seed, same arrays. An
    alternative to ``jax.jit(model.init)``, which on XLA:CPU compiles one random-number
    kernel per parameter and takes ~30 s on a 2-core machine (the forward pass alone
    compiles in ~3 s); useful in tests and benchmarks.
    """
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    for key, shape in expected_torchvision_shapes(num_classes).items():
        if key.endswith("conv.weight"):
            v = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif key.endswith(("bn.weight", "running_var")):
            v = np.ones(shape)
        elif key.endswith(("bn.bias", "running_mean", "fc.bias")):
            v = np.zeros(shape)
        else:  # fc.weight
            v = rng.normal(0.0, 0.01, shape)
        state[key] = v.astype(np.float32)
    return from_torchvision(state, source="random_variables")


def _read_state_dict(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise WeightsError(f"{path}: no such file.")
    if suffix in (".pth", ".pt", ".bin"):
        try:
            import torch
        except ImportError as e:
            raise WeightsError(
                f"{path}: reading a .pth file needs torch; install drugjax[torch] or "
                "convert it elsewhere with `python -m drugjax.models.weights convert IN OUT.npz`."
            ) from e
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for corrupt/unsafe files
            raise WeightsError(f"{path}: torch.load(weights_only=True) failed: {e}") from e
        if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise WeightsError(f"{path}: expected a state dict (a mapping of tensors), got "
                               f"{type(obj).__name__}.")
        return {k: v.detach().float().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
                for k, v in obj.items()}
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise WeightsError(f"{path}: not a readable safetensors file: {e}") from e
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception as e:
            raise WeightsError(f"{path}: not a readable .npz file: {e}") from e
    raise WeightsError(f"{path}: unknown weights format {suffix!r}; use .pth, .safetensors or .npz.")


def load_backbone(path: str | Path, *, include_classifier: bool = True) -> Variables:
    """Read InceptionV1 variables from a torchvision ``.pth``, ``.safetensors`` or ``.npz``.

    All three hold torchvision keys and layouts. Returns ``{"params", "batch_stats"}``;
    ``fc`` is included when the file has it and ``include_classifier`` is True.
    """
    path = Path(path)
    return from_torchvision(_read_state_dict(path), include_classifier=include_classifier,
                            source=str(path))


def save_npz(variables: Mapping[str, Any], path: str | Path) -> Path:
    """Write InceptionV1 variables to ``path`` (.npz) with torchvision keys and layouts."""
    path = Path(path)
    np.savez(path, **to_torchvision(variables))
    return path


def save_safetensors(variables: Mapping[str, Any], path: str | Path) -> Path:
    """Write InceptionV1 variables to a ``.safetensors`` file with torchvision keys/layouts."""
    from safetensors.numpy import save_file

    path = Path(path)
    save_file({k: np.ascontiguousarray(v) for k, v in to_torchvision(variables).items()}, str(path))
    return path


def convert(src: str | Path, dst: str | Path) -> Path:
    """Convert a weights file (.pth/.safetensors/.npz) to .npz or .safetensors."""
    dst = Path(dst)
    variables = load_backbone(src)
    if dst.suffix.lower() == ".npz":
        return save_npz(variables, dst)
    if dst.suffix.lower() == ".safetensors":
        return save_safetensors(variables, dst)
    raise WeightsError(f"{dst}: output must end in .npz or .safetensors.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drugjax.models.weights",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="convert IN (.pth/.safetensors/.npz) to OUT (.npz/.safetensors)")
    c.add_argument("src", metavar="IN")
    c.add_argument("dst", metavar="OUT")
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.dst)
    except WeightsError as e:
        print_error(e)
        return 2
    print(f"wrote {out} ({len(expected_torchvision_shapes(None))} backbone arrays"
          f"{' + classifier' if 'fc.weight' in _read_state_dict(out) else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
