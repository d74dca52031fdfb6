"""Structured configs of train.py.

Registered in Hydra's ConfigStore (:func:`register_configs`) as the schema that
``conf/train.yaml`` extends, so a misspelt key or a value of the wrong type fails at
start-up with Hydra's message, before any data is built or a model compiled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from drugjax.errors import UserError


@dataclass
class BackboneConfig:
    """The Inception-v1 backbone (used by ``model.kind=end_to_end`` and to precompute
    features for ``model.kind=heads``)."""

    # inception_v1 (the paper's GoogLeNet) or tiny (a two-conv stand-in for smoke
    # runs and tests; drugjax.models.tiny.TinyBackbone).
    name: str = "inception_v1"
    # synthetic: the stand-in shipped in drugjax/weights/ (pre-trained on the pretext set
    # of everyday objects, not ImageNet); none: random initialisation; or a weights file
    # (torchvision's .pth, or a converted .npz/.safetensors). None (unset) = synthetic on
    # data=synthetic, none on the user's own data (build.resolve_weights).
    weights: Optional[str] = None
    # None follows the weights: True for torchvision's files, the stand-in's provenance
    # (False), False for a random backbone.
    transform_input: Optional[bool] = None
    # Inception blocks whose global-average-pooled outputs, concatenated, are the
    # features: [inception5b] is torchvision's 1024-d pool (the paper's); mid-level
    # blocks add the colour and shape detail a backbone pre-trained on few classes drops
    # by its last block (docs/training.md).
    pool_layers: list[str] = field(default_factory=lambda: ["inception5b"])
    # Frozen features (model.kind=heads, evaluate.py) as the mean over the image and its
    # mirror image: test-time augmentation, at twice the extraction time.
    flip_average: bool = False
    trainable: bool = True  # False: frozen (stop_gradient + zero updates)
    train_bn: bool = True  # False: BatchNorm uses running statistics while training
    lr_factor: float = 0.1  # backbone learning rate = optim.learning_rate * lr_factor


@dataclass
class ModelConfig:
    # end_to_end: images -> InceptionV1 -> trunk -> heads, trained together.
    # heads: trunk + heads on 1024-d features precomputed once with the (frozen)
    # backbone, as in the paper; the backbone never runs during training steps.
    # classifier: images -> InceptionV1 -> one softmax layer over the pretext classes
    # (data.kind=pretext; experiment=pretrain makes the shipped stand-in backbone).
    kind: str = "end_to_end"
    tasks: list[str] = field(default_factory=lambda: ["drug", "weed", "pills", "syrup"])
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    dropout: float = 0.0
    # A LayerNorm over the features before the trunk (model.kind=heads/end_to_end):
    # on for features pooled from several blocks (model.backbone.pool_layers).
    input_norm: bool = False
    relation_weight: float = 0.5  # loss weight of the task-relation (parent) target
    dtype: str = "float32"  # compute dtype: float32 or bfloat16 (params stay float32)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


@dataclass
class DataConfig:
    # synthetic: the embedded world (data=synthetic); dir: the user's own ROOT (data=dir),
    # for which root is required (a missing root never falls back to the synthetic world);
    # pretext: the everyday-object set the stand-in backbone is pre-trained on
    # (drugjax.synthetic.pretext; seed is its seed, image_size its size).
    kind: str = "synthetic"
    # A dataset ROOT (docs/data-format.md); None = the embedded synthetic world,
    # generated and built on first use (drugjax.data.builders.prepare).
    root: Optional[str] = None
    preset: str = "small"
    seed: int = 0  # seed of the synthetic world (not of training)
    image_size: int = 96
    data_dir: Optional[str] = None  # cache of built datasets; None = ~/.cache/drugjax
    sources: list[str] = field(default_factory=lambda: ["posts", "web"])
    num_folds: int = 5
    val_fold: int = 0  # Instagram posts of this fold validate; the others train
    # Sampling weight of each entry of ``sources``, in order, e.g. data.mixture=[0.7,0.3];
    # empty = every record equally often (sources in proportion to their sizes). A list,
    # not a {source: weight} dict, because Hydra merges a dict override into the
    # existing dict and the struct config then refuses the new keys.
    mixture: list[float] = field(default_factory=list)
    augment: bool = True
    workers: int = 0
    # Largest share of rejected records (bad lines, unreadable images) per file before a
    # dataset build stops; every rejection is listed either way.
    max_rejected: float = 0.05
    batch_size: int = 32  # global, split evenly over the devices
    eval_batch_size: int = 64  # global
    pretext_per_class: int = 600  # data.kind=pretext: training images per class
    pretext_val_per_class: int = 20  # ... and validation images per class


@dataclass
class OptimConfig:
    name: str = "rmsprop"  # rmsprop | adamw | sgd
    learning_rate: float = 1e-3
    decay: float = 0.9  # RMSprop's moving-average decay
    eps: float = 1e-6
    momentum: float = 0.0
    centered: bool = False
    warmup_steps: int = 20
    schedule: str = "cosine"  # cosine | constant (after the warm-up)
    end_lr_factor: float = 0.0  # cosine decays to learning_rate * end_lr_factor
    weight_decay: float = 1e-4  # decoupled, on kernels only
    clip_norm: float = 1.0  # global gradient norm clipping; 0 disables it


@dataclass
class ParallelConfig:
    mode: str = "pmap"  # pmap | shard_map
    num_devices: Optional[int] = None  # None = all local devices
    # Wait for every step to finish before dispatching the next; needed with forced
    # host devices on few cores (collectives can deadlock with many steps in flight).
    block_every_step: bool = False
    # Synchronised BatchNorm: training-mode batch statistics averaged over all devices
    # (one all-reduce per BatchNorm layer), so D devices compute what one device computes
    # with the whole batch. False: each device normalises with its own share (cheaper).
    sync_batch_norm: bool = False
    # Multi-host: call jax.distributed.initialize() before anything else. With
    # coordinator_address None, JAX auto-detects the cluster (SLURM, TPU pods, ...).
    distributed: bool = False
    coordinator_address: Optional[str] = None
    num_processes: Optional[int] = None
    process_id: Optional[int] = None


@dataclass
class SweepConfig:
    """Many head trainings in one run (``model.kind=heads``; drugjax.training.sweep).

    Every list is an axis of the grid; an empty list means the single value of the
    ordinary key (``model.relation_weight``, ``optim.learning_rate``, ...). The grid is
    their product: e.g. 11 relation weights x 5 folds x 3 seeds = 165 trainings.
    """

    enabled: bool = False
    engine: str = "vmap"  # vmap (one compiled program) | loop (one training after another)
    relation_weights: list[float] = field(default_factory=list)
    folds: list[int] = field(default_factory=list)  # validation folds; empty: data.val_fold
    seeds: list[int] = field(default_factory=list)  # empty: seed
    learning_rates: list[float] = field(default_factory=list)
    decays: list[float] = field(default_factory=list)  # RMSprop's
    weight_decays: list[float] = field(default_factory=list)
    dropouts: list[float] = field(default_factory=list)
    chunk_steps: int = 100  # steps between the host's checks and saves


@dataclass
class SearchConfig:
    """An Optuna study of head configurations (``model.kind=heads``;
    drugjax.training.search): each round asks ``batch`` trials and trains them together
    in the sweep engine's vmapped program, until the study holds ``trials`` trials."""

    enabled: bool = False
    trials: int = 48
    batch: int = 16  # trials asked per round and trained in one program (per shape)
    sampler: str = "tpe"  # tpe (constant liar inside a round) | random | qmc (optuna>=3)
    metric: str = "auc"  # drug head, validation: auc | f1 | accuracy | precision | recall
    direction: str = "maximize"  # maximize | minimize
    folds: list[int] = field(default_factory=list)  # validation folds, mean over them; empty: data.val_fold
    seed: int = 0  # the sampler's; training draws from ``seed``
    # parameter -> {low, high[, log]} or {choices: [...]}; parameters: learning_rate,
    # decay, weight_decay, relation_weight, dropout, hidden (choices of lists of widths).
    space: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    name: str = "finetune"  # names the run directory runs/<name>
    # The run directory; None = Hydra's output directory (runs/<name>, see
    # conf/train.yaml), which is what makes "run the same command again" resume.
    workdir: Optional[str] = None
    seed: int = 0  # every random choice of training flows from it
    steps: int = 120
    log_every: int = 10
    eval_every: int = 60  # also evaluated at the last step
    checkpoint_every: int = 20
    keep_checkpoints: int = 2  # the latest N are kept, plus the best by best_metric
    best_metric: str = "auc"  # accuracy | precision | recall | f1 | auc | loss
    # Warm start: an orbax checkpoint (a run directory, its checkpoints/ or one step)
    # whose params (and batch stats) initialise the model; the step restarts at 0.
    init_from: Optional[str] = None
    progress: bool = True  # tqdm progress bar
    tensorboard: bool = True
    # What main() returns to a sweeper: a key of the final validation metrics.
    objective: str = "auc"
    # Free-form notes carried into results.json (e.g. by experiment configs).
    tags: list[str] = field(default_factory=list)


def register_configs() -> None:
    """Register :class:`TrainConfig` as ``train_schema`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


# --------------------------------------------------------------------------- checks
class ConfigError(UserError, ValueError):
    """A config value that cannot work (named, with the fix)."""


MODEL_KINDS = ("end_to_end", "heads", "classifier")
DATA_KINDS = ("synthetic", "dir", "pretext")
DTYPE_NAMES = ("float32", "bfloat16")
OBJECTIVES = ("accuracy", "precision", "recall", "f1", "auc", "loss")


def as_dict(cfg: Any) -> dict:
    """A config (DictConfig, TrainConfig or mapping) as plain, resolved data."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(cfg)


def to_config(cfg: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a DictConfig or mapping, through the schema's checks."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(as_dict(cfg)))
    return OmegaConf.to_object(merged)


def check_config(cfg: TrainConfig, num_devices: int) -> None:
    """Raise :class:`ConfigError` for a value that cannot work, naming the key and the fix."""
    from drugjax.tasks import TASKS

    model, data = cfg.model, cfg.data
    if data.kind not in DATA_KINDS:
        raise ConfigError(f"data.kind must be one of {DATA_KINDS}, got {data.kind!r}")
    if data.kind == "dir" and not data.root:
        raise ConfigError("data.root is required with data=dir: python train.py data=dir data.root=PATH")
    if model.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind must be one of {MODEL_KINDS}, got {model.kind!r}")
    if model.dtype not in DTYPE_NAMES:
        raise ConfigError(f"model.dtype must be one of {sorted(DTYPE_NAMES)}, got {model.dtype!r}")
    if (data.kind == "pretext") != (model.kind == "classifier"):
        raise ConfigError("the pretext set trains model.kind=classifier and only it: use experiment=pretrain "
                          f"(got data.kind={data.kind}, model.kind={model.kind})")
    if data.kind == "pretext" and min(data.pretext_per_class, data.pretext_val_per_class) < 1:
        raise ConfigError("data.pretext_per_class and data.pretext_val_per_class must be >= 1")
    bad = [t for t in model.tasks if t not in TASKS]
    if data.kind == "pretext":
        pass  # a classifier over the pretext classes: model.tasks plays no part
    elif bad or not model.tasks or "drug" not in model.tasks:
        raise ConfigError(f"model.tasks must be a subset of {list(TASKS)} that includes 'drug', got {list(model.tasks)}")
    if not 0 <= data.val_fold < data.num_folds:
        raise ConfigError(f"data.val_fold must lie in [0, data.num_folds={data.num_folds}), got {data.val_fold}")
    for key, size in (("data.batch_size", data.batch_size), ("data.eval_batch_size", data.eval_batch_size)):
        if size < num_devices or size % num_devices:
            raise ConfigError(f"{key}={size} must be a positive multiple of the {num_devices} devices in use")
    for key in ("steps", "log_every", "eval_every", "checkpoint_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.best_metric not in OBJECTIVES or cfg.objective not in OBJECTIVES:
        raise ConfigError(f"best_metric and objective must be among {OBJECTIVES}")
    if not 0.0 <= model.relation_weight:
        raise ConfigError(f"model.relation_weight must be >= 0, got {model.relation_weight}")
    check_backbone(model)


def check_backbone(model: ModelConfig) -> None:
    from drugjax.models.inception import check_pool_layers

    layers = list(model.backbone.pool_layers)
    if model.backbone.name == "inception_v1":
        try:
            check_pool_layers(layers)
        except ValueError as e:
            raise ConfigError(f"model.backbone.{e}; e.g. [inception3b,inception4b,inception4e,inception5b]") from None
    if model.backbone.flip_average and model.kind != "heads":
        raise ConfigError("model.backbone.flip_average averages frozen features (model.kind=heads); "
                          f"model.kind={model.kind} trains on randomly flipped images instead")
