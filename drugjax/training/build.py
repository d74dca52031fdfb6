"""Building the model and its train state from a config (Flax's ``create_train_state``).

The backbone (Inception-v1, or the tiny stand-in of tests), its pretrained weights, the
trunk and heads, the warm start from another run (``init_from``), the optimiser and the
:class:`~drugjax.training.state.TrainState` that holds them.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from drugjax.runtime.digest import digest_file
from drugjax.models import standin
from drugjax.models.heads import EndToEnd, LinearClassifier, MultitaskHeads
from drugjax.models.tiny import TinyBackbone
from drugjax.training.checkpoint import read_params
from drugjax.training.config import ConfigError, TrainConfig
from drugjax.training.optim import make_optimizer
from drugjax.training.state import TrainState
from drugjax.training.steps import AXIS
from drugjax.runtime.trees import plain

log = logging.getLogger(__name__)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
BACKBONES = ("inception_v1", "tiny")


@dataclasses.dataclass(frozen=True)
class BackboneWeights:
    """What ``model.backbone.weights`` resolves to: ``none`` (random initialisation),
    ``synthetic`` (the stand-in shipped in the package, :mod:`drugjax.models.standin`)
    or a weights file; with the input convention they go with and their sha256."""

    choice: str  # none | synthetic | file
    path: Path | None
    transform_input: bool
    sha256: str | None

    def describe(self) -> str:
        if self.choice == "none":
            return "random initialisation (model.backbone.weights=none)"
        if self.choice == "synthetic":
            return ("the stand-in pre-trained on drugjax's pretext set of everyday objects, not ImageNet "
                    f"(model.backbone.weights=synthetic, {self.path.name}, sha256 {self.sha256[:12]}...)")
        return f"{self.path} (sha256 {self.sha256[:12]}..., transform_input={self.transform_input})"


def resolve_weights(cfg: TrainConfig) -> BackboneWeights:
    """``model.backbone.weights`` resolved: unset means the stand-in on the synthetic
    world (what it was made for) and a random initialisation elsewhere (a user's data
    gets no silent choice: pass PATH, ``synthetic`` or ``none``). ``transform_input``
    unset follows the weights: True for torchvision's files, the provenance's value for
    the stand-in, False for a random backbone."""
    backbone = cfg.model.backbone
    weights = backbone.weights
    if weights is None:
        weights = standin.NAME if cfg.data.kind == "synthetic" and backbone.name == "inception_v1" else "none"
    path = Path(weights).expanduser()
    if weights not in ("none", standin.NAME):
        if path.is_dir():  # evaluate.py takes a train.py run here; train.py does not
            raise ConfigError(f"model.backbone.weights={weights} is a directory; train.py takes a weights file. To "
                              f"start from a train.py run, use init_from={weights} (its record of training posts "
                              "carries over)")
        if not path.is_file():
            raise ConfigError(f"model.backbone.weights={weights}: no such file; give a converted .npz/.safetensors, "
                              "a torchvision .pth, 'synthetic' (the shipped stand-in) or 'none'")
    if weights != "none" and backbone.name != "inception_v1":
        raise ConfigError(f"model.backbone.weights applies to inception_v1, not to {backbone.name!r}")
    if weights == "none":
        resolved = BackboneWeights("none", None, False, None)
    elif weights == standin.NAME:
        info = standin.provenance()
        resolved = BackboneWeights("synthetic", standin.WEIGHTS_FILE, bool(info["transform_input"]), info["sha256"])
    else:
        resolved = BackboneWeights("file", path, True, digest_file(path))
    if backbone.transform_input is not None:
        resolved = dataclasses.replace(resolved, transform_input=bool(backbone.transform_input))
    return resolved


def make_backbone(cfg: TrainConfig, dtype: Any, *, training: bool = True) -> Any:
    """The backbone ``model.backbone`` names, computing in ``dtype``. In training (not for
    feature extraction), ``parallel.sync_batch_norm`` averages BatchNorm's batch
    statistics over the devices. For feature extraction (``training=False``), Inception-v1
    folds BatchNorm into its convolutions (``fold_batch_norm``: the same features, within
    float32 rounding, from a cheaper forward pass)."""
    name = cfg.model.backbone.name
    bn_axis = AXIS if training and cfg.parallel.sync_batch_norm else None
    if name == "tiny":
        resolve_weights(cfg)  # refuses weights for the tiny stand-in
        if list(cfg.model.backbone.pool_layers) != ["inception5b"]:
            log.warning("model.backbone.pool_layers=%s names inception blocks; the tiny backbone has none and "
                        "returns its own pooled features", list(cfg.model.backbone.pool_layers))
        return TinyBackbone(dtype=dtype, bn_axis_name=bn_axis)
    if name != "inception_v1":
        raise ConfigError(f"model.backbone.name must be one of {BACKBONES}, got {name!r}")
    from drugjax.models import InceptionV1

    transform = resolve_weights(cfg).transform_input
    return InceptionV1(num_classes=None, transform_input=transform, dtype=dtype, bn_axis_name=bn_axis,
                       fold_batch_norm=not training, pool_layers=tuple(cfg.model.backbone.pool_layers))


def load_backbone_weights(cfg: TrainConfig) -> dict | None:
    """The variables ``model.backbone.weights`` resolves to (None: random initialisation)."""
    resolved = resolve_weights(cfg)
    log.info("backbone weights: %s", resolved.describe())
    if resolved.choice == "none":
        return None
    if resolved.choice == "synthetic":
        return standin.load()
    from drugjax.models.weights import load_backbone

    return load_backbone(str(resolved.path))


def make_model(cfg: TrainConfig, backbone: Any) -> Any:
    """End to end (backbone -> trunk -> heads), the trunk and heads alone, or the
    pretext classifier (backbone -> one softmax layer)."""
    model = cfg.model
    if model.kind == "classifier":
        from drugjax.synthetic.pretext import CLASS_NAMES

        return EndToEnd(backbone=backbone, heads=LinearClassifier(len(CLASS_NAMES), dtype=DTYPES[model.dtype]),
                        train_bn=model.backbone.train_bn)
    # Dropout masks drawn for the global batch: the same on any number of devices.
    heads = MultitaskHeads(hidden=tuple(model.hidden), dropout_rate=model.dropout, tasks=tuple(model.tasks),
                           input_norm=model.input_norm,
                           dtype=DTYPES[model.dtype], dropout_axis_name=AXIS)
    if model.kind == "heads":
        return heads
    return EndToEnd(backbone=backbone, heads=heads, freeze_backbone=not model.backbone.trainable,
                    train_bn=model.backbone.train_bn)


def graft(target: Any, source: Any, where: str) -> Any:
    """``source`` in place of ``target``, after checking both have one structure and shape."""
    t_struct, s_struct = jax.tree.structure(target), jax.tree.structure(source)
    if t_struct != s_struct:
        raise ConfigError(f"{where}: the parameter tree does not match the model's ({s_struct} vs {t_struct})")
    for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(source)):
        if tuple(np.shape(a)) != tuple(np.shape(b)):
            raise ConfigError(f"{where}: a parameter of shape {np.shape(b)} where the model has {np.shape(a)}")
    return jax.tree.map(lambda a, b: jnp.asarray(b, jnp.asarray(a).dtype), target, source)


def _graft_backbone(variables: dict, backbone_weights: dict) -> None:
    where = "model.backbone.weights"
    variables["params"]["backbone"] = graft(variables["params"]["backbone"], plain(backbone_weights["params"]), where)
    if "batch_stats" in variables:
        variables["batch_stats"]["backbone"] = graft(
            variables["batch_stats"]["backbone"], plain(backbone_weights.get("batch_stats", {})), where
        )


def _warm_start(variables: dict, run: str) -> None:
    """Parameters (and batch statistics) of another run's checkpoint (``init_from``)."""
    where = f"init_from={run}"
    warm = read_params(run)
    params = plain(warm["params"])
    if jax.tree.structure(params) == jax.tree.structure(variables["params"]):
        variables["params"] = graft(variables["params"], params, where)
        if warm["batch_stats"] and "batch_stats" in variables:
            variables["batch_stats"] = graft(variables["batch_stats"], plain(warm["batch_stats"]), where)
    elif "heads" in variables["params"]:
        # A heads-only run (paper_mtl) warm-starting the heads of an end-to-end model.
        variables["params"]["heads"] = graft(variables["params"]["heads"], params, where)
    else:
        raise ConfigError(f"{where}: its parameters match neither this model nor its heads")


def create_train_state(cfg: TrainConfig, model: Any, sample: jax.Array, init_key: jax.Array,
                       state_key: jax.Array, backbone_weights: dict | None) -> TrainState:
    """The initial train state: initialised variables, pretrained backbone weights grafted
    in (end to end), a warm start from ``init_from``, and the optimiser."""
    # Jitted: op-by-op initialisation compiles one kernel per layer, which costs
    # seconds on CPU.
    init = jax.jit(lambda k, x: model.init({"params": k, "dropout": k}, x, train=False))
    variables = plain(init(init_key, sample))
    end_to_end = cfg.model.kind in ("end_to_end", "classifier")
    if backbone_weights is not None and end_to_end:
        _graft_backbone(variables, backbone_weights)
    if cfg.init_from:
        _warm_start(variables, cfg.init_from)
    backbone = cfg.model.backbone
    tx = make_optimizer(cfg.optim, variables["params"], total_steps=cfg.steps,
                        backbone_trainable=end_to_end and backbone.trainable, backbone_lr_factor=backbone.lr_factor)
    return TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=state_key)


def backbone_variables(backbone: Any, backbone_weights: dict | None, init_key: jax.Array, image_size: int) -> dict:
    """The backbone's variables for feature extraction: the pretrained ones, else a
    random initialisation from ``init_key``."""
    if backbone_weights is not None:
        return backbone_weights
    return jax.jit(lambda k, x: backbone.init(k, x, train=False))(init_key, jnp.zeros((1, image_size, image_size, 3)))
