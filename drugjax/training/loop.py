"""The training loop: build data and model from a config, train, evaluate, checkpoint.

:func:`train_and_evaluate` is what ``train.py`` calls. It resumes automatically from the
latest readable checkpoint in the run directory, so running the same command again after
a kill continues where the last checkpoint left off and, on CPU, ends with bitwise the
same parameters as an uninterrupted run (every random choice flows from the seed, the
step and the data iterator's saved position).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig, OmegaConf

from drugjax.models.heads import EndToEnd, MultitaskHeads, TinyBackbone
from drugjax.tasks import INSTAGRAM_POSITIVE, TASKS
from drugjax.training import features as feats_lib
from drugjax.training.checkpoint import CheckpointError, Checkpoints, read_params
from drugjax.training.config import TrainConfig
from drugjax.training.metrics import METRICS, MetricWriter, binary_metrics, jsonable
from drugjax.training.optim import make_optimizer
from drugjax.training.state import TrainState
from drugjax.training.steps import DataParallel, make_steps

log = logging.getLogger(__name__)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODEL_KINDS = ("end_to_end", "heads")
# Config keys that may change between a run and its resumption.
_RESUME_FREE = {"workdir", "steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "progress",
                "tensorboard", "objective", "tags", "name", "parallel", "data.workers", "init_from"}


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or Inf."""


class ConfigError(ValueError):
    """A config value that cannot work (named, with the fix)."""


# --------------------------------------------------------------------------- config
def _as_dict(cfg: DictConfig | TrainConfig | Mapping) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(cfg)


def _to_config(cfg: DictConfig | TrainConfig | Mapping) -> TrainConfig:
    schema = OmegaConf.structured(TrainConfig)
    merged = OmegaConf.merge(schema, OmegaConf.create(_as_dict(cfg)))
    return OmegaConf.to_object(merged)


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _config_changes(saved: Mapping, current: Mapping) -> dict:
    a, b = _flatten(saved), _flatten(current)
    defaults = _flatten(dataclasses.asdict(TrainConfig()))
    changed = {}
    for k in sorted(set(a) | set(b)):
        if k in _RESUME_FREE or k.split(".")[0] in _RESUME_FREE or ".".join(k.split(".")[:2]) in _RESUME_FREE:
            continue
        if k not in a and b.get(k) == defaults.get(k, object()):
            continue  # a key added to the schema since that run, at its default: no change
        if a.get(k) != b.get(k):
            changed[k] = (a.get(k), b.get(k))
    return changed


def _check(cfg: TrainConfig, num_devices: int) -> None:
    m, d = cfg.model, cfg.data
    if d.kind not in ("synthetic", "dir"):
        raise ConfigError(f"data.kind must be synthetic or dir, got {d.kind!r}")
    if d.kind == "dir" and not d.root:
        raise ConfigError("data.root is required with data=dir: python train.py data=dir data.root=PATH")
    if m.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind must be one of {MODEL_KINDS}, got {m.kind!r}")
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be one of {sorted(DTYPES)}, got {m.dtype!r}")
    bad = [t for t in m.tasks if t not in TASKS]
    if bad or not m.tasks or "drug" not in m.tasks:
        raise ConfigError(f"model.tasks must be a subset of {list(TASKS)} that includes 'drug', got {list(m.tasks)}")
    if not 0 <= d.val_fold < d.num_folds:
        raise ConfigError(f"data.val_fold must lie in [0, data.num_folds={d.num_folds}), got {d.val_fold}")
    for key, size in (("data.batch_size", d.batch_size), ("data.eval_batch_size", d.eval_batch_size)):
        if size < num_devices or size % num_devices:
            raise ConfigError(f"{key}={size} must be a positive multiple of the {num_devices} devices in use")
    for key in ("steps", "log_every", "eval_every", "checkpoint_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.best_metric not in METRICS + ("loss",) or cfg.objective not in METRICS + ("loss",):
        raise ConfigError(f"best_metric and objective must be among {METRICS + ('loss',)}")
    if not 0.0 <= m.relation_weight:
        raise ConfigError(f"model.relation_weight must be >= 0, got {m.relation_weight}")


# --------------------------------------------------------------------------- data
class _TrainFoldSource:
    """A source whose records all count as being in ``fold`` (web images are never
    validated on, so all of them train, whatever fold their id hashes to)."""

    def __init__(self, source: Any, fold: int):
        self._source = source
        cols = pipeline_scan(source)
        self.columns = dataclasses.replace(cols, fold=np.full_like(cols.fold, fold))

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i):
        return self._source[i]


def pipeline_scan(source):
    from drugjax.data import pipeline

    return pipeline.scan(source)


def _source_identity(source: Any) -> str:
    """What identifies a source's content: the build metadata of a built dataset (its
    version, preset/seed or ROOT content fingerprint, per-record kinds and folds), else
    the size, kinds and folds of an in-memory one."""
    import hashlib

    metadata = getattr(source, "metadata", None)
    if metadata:
        blob = json.dumps(metadata, sort_keys=True, default=str).encode()
    else:
        cols = pipeline_scan(source)
        blob = b"".join([str(len(source)).encode(), cols.kind.tobytes(), cols.fold.tobytes(), cols.has_image.tobytes()])
    return hashlib.sha256(blob).hexdigest()[:16]


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    import hashlib

    h = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _feature_cache_dir(cfg: TrainConfig) -> Path:
    if cfg.data.data_dir:
        base = Path(cfg.data.data_dir).expanduser()
    else:
        from drugjax.data.builders import default_data_dir

        base = Path(default_data_dir())
    path = base / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mixture(dcfg) -> dict[str, float] | None:
    """``data.mixture`` as the pipeline's {source: weight}, checked against ``data.sources``."""
    if not dcfg.mixture:
        return None
    if len(dcfg.mixture) != len(dcfg.sources):
        raise ConfigError(
            f"data.mixture={list(dcfg.mixture)} needs one weight per entry of "
            f"data.sources={list(dcfg.sources)}, e.g. data.mixture=[0.5,0.5]"
        )
    return dict(zip(dcfg.sources, dcfg.mixture))


def _load_sources(cfg: TrainConfig) -> dict:
    try:
        from drugjax.data.builders import prepare
    except ImportError as e:  # pragma: no cover - only before the builders exist
        raise ConfigError(f"cannot build datasets: drugjax.data.builders is unavailable ({e})") from e
    if not 0 <= cfg.data.max_rejected <= 1:
        raise ConfigError(f"data.max_rejected must be a share between 0 and 1, got {cfg.data.max_rejected}")
    return prepare(cfg.data.root, preset=cfg.data.preset, seed=cfg.data.seed, image_size=cfg.data.image_size,
                   data_dir=cfg.data.data_dir, max_rejected=cfg.data.max_rejected)


class _ImageBatches:
    """Adapts the image pipeline's batches (``image``) to the steps' input (``x``)."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return self

    def __next__(self):
        b = next(self.loader)
        return {"x": b["image"], "kind": b["kind"], "valid": b["valid"]}

    def get_state(self):
        return self.loader.get_state()

    def set_state(self, state):
        self.loader.set_state(state)

    def close(self):
        close = getattr(self.loader, "close", None)
        if close:
            close()


def _eval_image_batches(loader):
    for b in loader:
        yield {"x": b["image"], "kind": b["kind"], "valid": b["valid"]}


# --------------------------------------------------------------------------- model
BACKBONES = ("inception_v1", "tiny")


def _backbone(cfg: TrainConfig, dtype):
    name = cfg.model.backbone.name
    if name == "tiny":
        if cfg.model.backbone.weights:
            raise ConfigError("model.backbone.weights applies to inception_v1, not to the tiny stand-in")
        return TinyBackbone(dtype=dtype)
    if name != "inception_v1":
        raise ConfigError(f"model.backbone.name must be one of {BACKBONES}, got {name!r}")
    from drugjax.models import InceptionV1

    transform = cfg.model.backbone.transform_input
    if transform is None:
        transform = cfg.model.backbone.weights is not None
    return InceptionV1(num_classes=None, transform_input=bool(transform), dtype=dtype)


def _load_backbone_weights(path: str) -> dict:
    from drugjax.models.weights import load_backbone

    if not Path(path).expanduser().exists():
        raise ConfigError(f"model.backbone.weights={path}: no such file; give a converted .npz/.safetensors or a torchvision .pth")
    return load_backbone(str(Path(path).expanduser()))


def _graft(target: Any, source: Any, where: str) -> Any:
    """``source`` in place of ``target``, after checking both have one structure and shape."""
    t_struct, s_struct = jax.tree.structure(target), jax.tree.structure(source)
    if t_struct != s_struct:
        raise ConfigError(f"{where}: the parameter tree does not match the model's ({s_struct} vs {t_struct})")
    for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(source)):
        if tuple(np.shape(a)) != tuple(np.shape(b)):
            raise ConfigError(f"{where}: a parameter of shape {np.shape(b)} where the model has {np.shape(a)}")
    return jax.tree.map(lambda a, b: jnp.asarray(b, jnp.asarray(a).dtype), target, source)


def _plain(tree: Any) -> Any:
    """Flax FrozenDicts -> dicts, so trees from different sources compare equal."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


# --------------------------------------------------------------------------- loop
class _Stop:
    """SIGTERM -> stop at the next step boundary (after a checkpoint)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _check_finite(step: int, m: dict, tasks, ckpt_dir: Path, last_good: int | None) -> None:
    def fail(term: str, value: Any):
        where = f"step {last_good} in {ckpt_dir}" if last_good is not None else "none was saved yet"
        raise NonFiniteError(
            f"non-finite {term} ({value}) at step {step}; stopped. The last good checkpoint is {where}. "
            "Lower optim.learning_rate, keep optim.clip_norm > 0, or check the input data."
        )

    for t, v in zip(tasks, np.atleast_1d(m["task_loss"])):
        if not np.isfinite(v):
            fail(f"loss term of task '{t}'", v)
    if not np.isfinite(m["loss"]):
        fail("loss", m["loss"])
    bad = [jax.tree_util.keystr(p) for p, ok in jax.tree_util.tree_flatten_with_path(m["grad_finite"])[0] if not ok]
    if bad or not np.isfinite(m["grad_norm"]):
        fail(f"gradient of params{bad[0] if bad else ''}", m["grad_norm"])


@contextlib.contextmanager
def _data_errors():
    """The loaders' ValueErrors (too little data for a batch, a bad mixture, ...) as one
    ConfigError line, which train.py prints without a traceback."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None


def _usable_records(sources: Mapping[str, Any], names: list[str]) -> dict[str, dict[str, int]]:
    """Per source: records, and how many the loaders leave out (no image, no label), logged."""
    from drugjax.data import pipeline

    counts = {}
    for name in names:
        columns = pipeline.scan(sources[name])
        no_image, unlabelled = int((~columns.has_image).sum()), int((columns.kind < 0).sum())
        used = int((columns.has_image & (columns.kind >= 0)).sum())
        counts[name] = {"records": len(columns.kind), "used": used, "without_image": no_image, "unlabelled": unlabelled}
        if used < len(columns.kind):
            log.info("%s: %d of %d records are used; left out: %d without an image, %d unlabelled",
                     name, used, len(columns.kind), no_image, unlabelled)
    return counts


def _logged_val(metrics_path: Path, step: int | None) -> dict | None:
    """The validation metrics metrics.jsonl holds for ``step`` (the best one), if any."""
    if step is None or not metrics_path.exists():
        return None
    found = None
    for line in metrics_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("split") == "val" and record.get("step") == step:
            found = {k: v for k, v in record.items() if k not in ("step", "split")}
    return found


def _check_steps_change(saved_cfg: Mapping, cfg: TrainConfig, workdir: Path) -> None:
    """``steps`` may change on resume only where it does not shape the learning rate."""
    saved_steps = saved_cfg.get("steps")
    if saved_steps is None or saved_steps == cfg.steps:
        return
    warmup_same = min(cfg.optim.warmup_steps, saved_steps - 1) == min(cfg.optim.warmup_steps, cfg.steps - 1)
    if cfg.optim.schedule == "constant" and warmup_same:
        log.info("steps changed from %d to %d on resume (constant schedule: the rate is unchanged)", saved_steps, cfg.steps)
        return
    raise ConfigError(
        f"{workdir} was started with steps={saved_steps}; now steps={cfg.steps}. The "
        f"{cfg.optim.schedule} learning-rate schedule spans `steps`, so resuming with another value "
        f"would bend the schedule half-way. Resume with steps={saved_steps}, or train longer in a new "
        f"run warm-started from this one: name=NEW init_from={workdir} steps={cfg.steps}"
    )


def _data_states_of_all_processes(local_state: Any) -> dict:
    """``{"data_states": [state of process 0, 1, ...]}`` on several hosts, else ``{}``.

    Each host draws its own shuffle, so each host's iterator state is saved (the
    checkpoint's JSON items are written by process 0 alone).
    """
    if jax.process_count() == 1:
        return {}
    from jax.experimental import multihost_utils

    blob = np.frombuffer(json.dumps(local_state).encode(), np.uint8)
    lengths = multihost_utils.process_allgather(np.int32(blob.size))
    padded = np.zeros(int(np.max(lengths)), np.uint8)
    padded[: blob.size] = blob
    blobs = multihost_utils.process_allgather(padded)
    return {"data_states": [json.loads(bytes(b[:n]).decode()) for b, n in zip(blobs, lengths)]}


def _restore_data_state(loader: Any, meta: Mapping, step_dir: Path) -> None:
    """Put the data iterator where the checkpoint's was (this host's own state)."""
    states = meta.get("data_states")
    if states is not None and len(states) != jax.process_count():
        raise ConfigError(
            f"{step_dir} was saved by {len(states)} processes and this run has {jax.process_count()}; "
            "each host's data position is saved separately, so resume with the same number of processes"
        )
    state = states[jax.process_index()] if states is not None else meta.get("data_state")
    try:
        loader.set_state(state)
    except ValueError as e:
        raise ConfigError(f"cannot resume the data iterator saved in {step_dir}: {e}") from None


class _Progress:
    """A tqdm bar of completed steps (not dispatched ones) that says when it compiles."""

    def __init__(self, total: int, start: int, desc: str, *, enabled: bool):
        self._bar = None
        if enabled and start < total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True)
            self._bar.set_postfix_str("compiling the training step")

    def finished(self, step: int, **postfix: str) -> None:
        """Steps up to ``step`` have completed on the device."""
        if self._bar is None:
            return
        self._bar.update(step - self._bar.n)
        if postfix:
            self._bar.set_postfix(**postfix)
        elif step == self._bar.n:
            self._bar.set_postfix_str("")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _evaluate(eval_fn, state, batches, parallel: DataParallel, drug_col: int) -> dict[str, float]:
    probs, labels, losses = [], [], []
    for b in batches:
        out = jax.device_get(eval_fn(state, parallel.put_batch(b)))
        valid = np.asarray(b["valid"]).reshape(-1)
        probs.append(np.asarray(out["prob"]).reshape(valid.size, -1)[valid, drug_col])
        labels.append((np.asarray(b["kind"]).reshape(-1)[valid] == INSTAGRAM_POSITIVE).astype(int))
        losses.append(np.asarray(out["loss"]).reshape(-1)[valid])
    res = binary_metrics(np.concatenate(labels), np.concatenate(probs))
    res["loss"] = float(np.mean(np.concatenate(losses)))
    return res


def train_and_evaluate(
    cfg: DictConfig | TrainConfig | Mapping,
    workdir: str | Path,
    *,
    sources: Mapping[str, Any] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Train per ``cfg`` in ``workdir`` (resuming from its checkpoints) and evaluate.

    Args:
      cfg: a :class:`TrainConfig` (or a DictConfig/dict of one).
      workdir: the run directory: checkpoints/, metrics.jsonl, tensorboard/,
        results.json. (``model.kind=heads`` caches its features under
        ``<data_dir>/features/``, shared between runs.)
      sources: data sources as returned by ``drugjax.data.builders.prepare`` (built
        from ``cfg.data`` when None).
      on_start: called with ``workdir`` once every check has passed (config, data,
        checkpoints), before anything else is written there; train.py writes Hydra's
        record of the run with it.

    Returns:
      The results (also written to ``workdir/results.json``): ``val`` (accuracy,
      precision, recall, f1, auc, loss of the drug head on the validation fold),
      ``objective``, ``step``, ``best_step``, ``interrupted`` and timings.
    """
    t_start = time.time()
    config_dict = _as_dict(cfg)
    cfg = _to_config(cfg)
    workdir = Path(workdir).absolute()

    if cfg.parallel.distributed:
        # Several hosts: every process runs this same program; JAX needs to meet them
        # before any device is touched. With no address, JAX detects SLURM/TPU settings.
        jax.distributed.initialize(
            coordinator_address=cfg.parallel.coordinator_address,
            num_processes=cfg.parallel.num_processes,
            process_id=cfg.parallel.process_id,
        )
    devices = jax.local_devices()
    if cfg.parallel.num_devices is not None:
        if not 1 <= cfg.parallel.num_devices <= len(devices):
            raise ConfigError(f"parallel.num_devices={cfg.parallel.num_devices}, but {len(devices)} local devices exist")
        devices = devices[: cfg.parallel.num_devices]
    ndev = len(devices)
    _check(cfg, ndev)
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_count() > 1 and cfg.parallel.mode != "pmap":
        raise ConfigError("several hosts need parallel=pmap (the shard_map mesh here spans local devices only)")
    parallel = DataParallel(cfg.parallel.mode, None if cfg.parallel.num_devices is None else devices)
    is_main = jax.process_index() == 0
    dtype = DTYPES[cfg.model.dtype]
    tasks = tuple(cfg.model.tasks)
    drug_col = tasks.index("drug")
    dcfg = cfg.data
    train_folds = [f for f in range(dcfg.num_folds) if f != dcfg.val_fold]
    per_device, eval_per_device = dcfg.batch_size // ndev, dcfg.eval_batch_size // ndev
    # Several hosts draw independent shuffles (seed + process index) of the same data.
    data_seed = cfg.seed + jax.process_index()

    if sources is None:
        sources = _load_sources(cfg)
    missing = [s for s in dcfg.sources if s not in sources]
    if missing or not dcfg.sources:
        raise ConfigError(f"data.sources={list(dcfg.sources)}: {missing} not among the built sources {sorted(sources)}")
    if "posts" not in sources:
        raise ConfigError("validation needs the 'posts' source (Instagram posts with drug labels)")
    data_counts = _usable_records(sources, sorted(set(dcfg.sources) | {"posts"}))
    if data_counts["posts"]["unlabelled"] == data_counts["posts"]["records"]:
        # A freshly imported ROOT: every post still has drug null.
        raise ConfigError(f"none of the {data_counts['posts']['records']} posts has a drug label (0 or 1) yet; label "
                          f"them first: python -m drugjax.data export-unlabelled ROOT --posts todo.csv, fill its "
                          f"drug column, then python -m drugjax.data label ROOT --posts todo.csv")
    train_sources = {n: sources[n] for n in dcfg.sources}
    if "web" in train_sources:
        train_sources["web"] = _TrainFoldSource(train_sources["web"], train_folds[0])

    key = jax.random.PRNGKey(cfg.seed)
    init_key, state_key = jax.random.split(key)
    bb_cfg = cfg.model.backbone
    heads = MultitaskHeads(hidden=tuple(cfg.model.hidden), dropout_rate=cfg.model.dropout, tasks=tasks, dtype=dtype)
    backbone_vars = _load_backbone_weights(bb_cfg.weights) if bb_cfg.weights else None

    if cfg.model.kind == "end_to_end":
        backbone = _backbone(cfg, dtype)
        model = EndToEnd(backbone=backbone, heads=heads, freeze_backbone=not bb_cfg.trainable, train_bn=bb_cfg.train_bn)
        sample = jnp.zeros((1, dcfg.image_size, dcfg.image_size, 3), jnp.float32)
        from drugjax.data import pipeline

        with _data_errors():
            train_data = _ImageBatches(
                pipeline.train_loader(
                    train_sources, image_size=dcfg.image_size, per_device_batch=per_device, num_devices=ndev,
                    seed=data_seed, folds=train_folds, mixture=_mixture(dcfg), augment=dcfg.augment,
                    workers=dcfg.workers,
                )
            )
            val_loader = pipeline.eval_loader(
                sources, image_size=dcfg.image_size, per_device_batch=eval_per_device, num_devices=ndev,
                folds=[dcfg.val_fold], names=["posts"], workers=dcfg.workers,
            )
        val_batches = lambda: _eval_image_batches(val_loader)  # noqa: E731
        units = "img"
    else:
        # The paper's set-up: features computed once with the backbone (frozen), then
        # only the trunk and heads train.
        backbone = _backbone(cfg, jnp.float32)
        names = sorted(set(dcfg.sources) | {"posts"})
        fkey = feats_lib.cache_key(
            backbone=bb_cfg.name, weights=_file_digest(bb_cfg.weights), transform=getattr(backbone, "transform_input", None),
            seed=cfg.seed, image_size=dcfg.image_size, data={n: _source_identity(sources[n]) for n in names},
        )
        # Shared by every run and sweep trial with the same backbone and data.
        fpath = _feature_cache_dir(cfg) / f"features-{fkey}.npz"
        feats = feats_lib.load_features(fpath, fkey)
        if feats is None:
            log.info("extracting backbone features of %s (once; cached in %s)", names, fpath)
            if backbone_vars is None:
                bvars = jax.jit(lambda k, x: backbone.init(k, x, train=False))(
                    init_key, jnp.zeros((1, dcfg.image_size, dcfg.image_size, 3))
                )
            else:
                bvars = backbone_vars
            feats = feats_lib.extract_features(
                backbone, bvars, sources, names=names, image_size=dcfg.image_size,
                batch_size=dcfg.eval_batch_size, workers=dcfg.workers,
            )
            if is_main:
                feats_lib.save_features(fpath, feats, fkey)
        train_x, train_k = [], []
        for n in dcfg.sources:
            keep = np.isin(feats[n]["fold"], train_folds) if n == "posts" else np.ones(len(feats[n]["kind"]), bool)
            train_x.append(feats[n]["features"][keep])
            train_k.append(feats[n]["kind"][keep])
        with _data_errors():
            train_data = feats_lib.FeatureLoader(
                np.concatenate(train_x), np.concatenate(train_k), per_device_batch=per_device, num_devices=ndev,
                seed=data_seed,
            )
        vmask = feats["posts"]["fold"] == dcfg.val_fold
        fixed_val = feats_lib.eval_batches(
            feats["posts"]["features"][vmask], feats["posts"]["kind"][vmask],
            per_device_batch=eval_per_device, num_devices=ndev,
        )
        val_batches = lambda: iter(fixed_val)  # noqa: E731
        if dcfg.mixture:
            log.warning("data.mixture applies to end-to-end training; on features every training "
                        "example is drawn equally often")
        model = heads
        sample = jnp.zeros((1, feats["posts"]["features"].shape[1]), jnp.float32)
        units = "samples"

    # Jitted: op-by-op initialisation compiles one kernel per layer, which costs
    # seconds on CPU.
    init = jax.jit(lambda k, x: model.init({"params": k, "dropout": k}, x, train=False))
    variables = _plain(init(init_key, sample))
    if backbone_vars is not None and cfg.model.kind == "end_to_end":
        variables["params"]["backbone"] = _graft(variables["params"]["backbone"], _plain(backbone_vars["params"]), "model.backbone.weights")
        if "batch_stats" in variables:
            variables["batch_stats"]["backbone"] = _graft(
                variables["batch_stats"]["backbone"], _plain(backbone_vars.get("batch_stats", {})), "model.backbone.weights"
            )
    if cfg.init_from:
        warm = read_params(cfg.init_from)
        p = _plain(warm["params"])
        if jax.tree.structure(p) == jax.tree.structure(variables["params"]):
            variables["params"] = _graft(variables["params"], p, f"init_from={cfg.init_from}")
            if warm["batch_stats"] and "batch_stats" in variables:
                variables["batch_stats"] = _graft(variables["batch_stats"], _plain(warm["batch_stats"]), f"init_from={cfg.init_from}")
        elif "heads" in variables["params"]:
            # A heads-only run (paper_mtl) warm-starting the heads of an end-to-end model.
            variables["params"]["heads"] = _graft(variables["params"]["heads"], p, f"init_from={cfg.init_from}")
        else:
            raise ConfigError(f"init_from={cfg.init_from}: its parameters match neither this model nor its heads")

    trainable_backbone = cfg.model.kind == "end_to_end" and bb_cfg.trainable
    tx = make_optimizer(cfg.optim, variables["params"], total_steps=cfg.steps,
                        backbone_trainable=trainable_backbone, backbone_lr_factor=bb_cfg.lr_factor)
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=state_key)

    ckpt_dir = workdir / "checkpoints"
    ckpts = Checkpoints(ckpt_dir, keep=cfg.keep_checkpoints, best_metric=cfg.best_metric)
    start = 0
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), state.to_tree())

    def check_config(saved_cfg: dict) -> None:
        changes = _config_changes(saved_cfg, config_dict)
        if changes:
            raise ConfigError(
                f"{workdir} holds a run with a different config (saved, now): {changes}. "
                "Use another run directory (e.g. name=...) or delete that one to start afresh."
            )
        _check_steps_change(saved_cfg, cfg, workdir)

    try:
        restored = ckpts.restore_latest(abstract, check_config=check_config)
        if restored is not None:
            start, tree, meta, _ = restored
            state = state.from_tree(tree)
            _restore_data_state(train_data, meta, ckpt_dir / str(start))
    except (ConfigError, CheckpointError):
        ckpts.close()
        raise
    # Only now, with the run directory's checkpoints known to fit, is anything written there.
    if on_start is not None and is_main:
        on_start(workdir)
    writer = MetricWriter(workdir, tensorboard=cfg.tensorboard, enabled=is_main,
                          resume_step=start if restored is not None else None)
    if restored is not None:
        log.info("resumed from %s at step %d", ckpt_dir, start)
    state = parallel.put_state(state)
    train_fn, eval_fn = make_steps(parallel, relation_weight=cfg.model.relation_weight, tasks=tasks)

    pending: list[tuple[int, dict]] = []
    last_good = start if restored is not None else None
    val: dict[str, float] | None = None
    interrupted = False
    step = start
    t_window, n_window = time.time(), 0
    global_batch = dcfg.batch_size
    progress = _Progress(cfg.steps, start, f"train {cfg.name}", enabled=cfg.progress and is_main)

    def flush():
        nonlocal t_window, n_window
        if not pending:
            return
        host = jax.device_get([m for _, m in pending])
        for (s, _), m in zip(pending, host):
            _check_finite(s, m, tasks, ckpt_dir, last_good)
        s_last = pending[-1][0]
        m = host[-1]
        elapsed = max(time.time() - t_window, 1e-9)
        rate = n_window * global_batch / elapsed
        mean_loss = float(np.mean([h["loss"] for h in host]))
        values = {"loss": mean_loss, "grad_norm": float(m["grad_norm"]), f"{units}_per_s": rate}
        values.update({f"loss_{t}": float(v) for t, v in zip(tasks, np.atleast_1d(m["task_loss"]))})
        writer.write(s_last, "train", values)
        progress.finished(s_last, loss=f"{mean_loss:.4f}", **{f"{units}/s": f"{rate:.1f}"})
        pending.clear()
        t_window, n_window = time.time(), 0

    try:
        with _Stop() as stop:
            while step < cfg.steps:
                batch = next(train_data)
                state, metrics = train_fn(state, parallel.put_batch(batch))
                step += 1
                n_window += 1
                pending.append((step, metrics))
                if step == start + 1:
                    # The first step compiles: wait for it, so the bar says "compiling" for
                    # that time and the throughput window starts after it.
                    jax.block_until_ready(metrics)
                    progress.finished(step)
                    t_window, n_window = time.time(), 0
                elif cfg.parallel.block_every_step:
                    jax.block_until_ready(metrics)
                last = step == cfg.steps
                do_eval = last or step % cfg.eval_every == 0
                if do_eval or step % cfg.log_every == 0 or step % cfg.checkpoint_every == 0:
                    flush()  # raises on NaN/Inf before anything is saved
                if do_eval:
                    val = _evaluate(eval_fn, state, val_batches(), parallel, drug_col)
                    writer.write(step, "val", val)
                    t_window = time.time()  # keep evaluation out of the throughput
                # Read once, after the blocking work above (a SIGTERM may land during it):
                # the decision to save and the decision to stop are one and the same.
                stop_now = stop.requested and not last
                if do_eval or step % cfg.checkpoint_every == 0 or stop_now:
                    flush()
                    ckpts.save(step, state.to_tree(), data_state=train_data.get_state(), config=config_dict,
                               metrics={k: val[k] for k in METRICS + ("loss",)} if do_eval else None,
                               extra_meta=_data_states_of_all_processes(train_data.get_state()))
                    last_good = step
                if stop_now:
                    ckpts.wait()  # the checkpoint exists before the message says so
                    interrupted = True
                    log.warning("SIGTERM: saved a checkpoint at step %d; run the same command to resume", step)
                    break
        if val is None and not interrupted:
            # Nothing left to train (a finished run started again): evaluate the state.
            val = _evaluate(eval_fn, state, val_batches(), parallel, drug_col)
    finally:
        progress.close()
        best_step = ckpts.best_step()
        ckpts.close()
        writer.close()
        close = getattr(train_data, "close", None)
        if close:
            close()

    results = {
        "name": cfg.name,
        "step": int(step),
        "steps": cfg.steps,
        "interrupted": interrupted,
        "val": val,
        "objective": None if val is None else val[cfg.objective],
        "objective_name": cfg.objective,
        "best_step": best_step,
        "best_val": _logged_val(writer.path, best_step),
        "data": data_counts,
        "workdir": str(workdir),
        "devices": ndev,
        "parallel": cfg.parallel.mode,
        "wall_time_s": round(time.time() - t_start, 2),
        "config": config_dict,
    }
    if is_main:
        tmp = workdir / "results.json.tmp"
        tmp.write_text(json.dumps(jsonable(results), indent=2) + "\n")
        tmp.replace(workdir / "results.json")
    return results


def final_params(workdir: str | Path) -> dict:
    """The parameters of a run's latest checkpoint (numpy), e.g. to compare runs."""
    return read_params(workdir)["params"]


__all__ = ["train_and_evaluate", "NonFiniteError", "ConfigError", "final_params"]
