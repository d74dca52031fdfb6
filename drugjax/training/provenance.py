"""Which posts a train.py run trained on (``<run>/training_posts.json``), and a run's
checkpoint as a frozen backbone.

train.py writes the record before its first step (so before its first checkpoint), on
every start: the Instagram posts whose images the run's gradient steps may draw (the
usable posts — with an image and a label — of the training folds, when ``posts`` is in
``data.sources``), the world they come from, and, for a run warm-started with
``init_from=``, the record of that run, so a chain of runs carries the union of what each
trained on. A run whose ``init_from`` run has no record says so (``unrecorded``) instead
of pretending to know.

evaluate.py reads it (:mod:`drugjax.evaluation.leakage`) to refuse a backbone that has
seen a post it scores. Posts are compared by id; the synthetic worlds reuse ids
(``p000000`` ...), so two synthetic worlds of another preset, seed, generator version or
knobs hold different posts under the same ids and are told apart by :func:`world_of`.
Any other data (a ROOT of real posts, whose ids are Instagram's) is compared by id
alone, so a relabelled or re-imported copy of the same posts still counts as the same.

Record format (``format`` 1)::

    {"format": 1, "written_by": "train.py", "run": "/abs/runs/NAME", "complete": true,
     "unrecorded": [],                  # ancestors whose training data is unknown
     "trained_on": [                    # this run first, then what init_from brought
       {"run": "/abs/runs/NAME", "via": "this run", "world": {...}, "identity": "...",
        "sources": ["posts", "web"], "train_folds": [1, 2, 3, 4], "val_fold": 0,
        "posts": ["p000001", ...], "web_images": 6829, "validation_posts": 964,
        "backbone_weights": null, "init_from": null},
       ...]}
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.data import pipeline
from drugjax.training.config import ConfigError, TrainConfig

RECORD = "training_posts.json"
FORMAT = 1
_READ_CHUNK = 256


# --------------------------------------------------------------------------- worlds
def world_of(source: Any) -> dict:
    """What world a posts source's records come from: a synthetic world by preset, seed,
    generator version and knobs (its post ids repeat across worlds); a ROOT by its path
    and content fingerprint (for the record only: real ids are compared alone); an
    in-memory source (tests) as ``memory``."""
    md = getattr(source, "metadata", None) or {}
    if md.get("source") == "synthetic":
        world = md.get("world") or {}
        return {"source": "synthetic", "preset": md.get("preset"), "seed": md.get("seed"),
                "generator_version": world.get("version"), "knobs": world.get("knobs") or {}}
    if md:
        return {"source": str(md.get("source")), "root": md.get("root"), "fingerprint": md.get("fingerprint")}
    return {"source": "memory"}


def same_world(a: Mapping, b: Mapping) -> bool:
    """Whether posts of worlds ``a`` and ``b`` with equal ids may be the same posts: False
    only for two synthetic worlds that differ (preset, seed, generator version, knobs)."""
    if a.get("source") == b.get("source") == "synthetic":
        keys = ("preset", "seed", "generator_version", "knobs")
        return all(a.get(k) == b.get(k) for k in keys)
    return True


def describe_world(world: Mapping) -> str:
    if world.get("source") == "synthetic":
        return (f"synthetic world preset {world.get('preset')}, seed {world.get('seed')}, generator version "
                f"{world.get('generator_version')}")
    if world.get("source") == "memory":
        return "in-memory posts"
    return f"ROOT {world.get('root')}"


def post_ids(source: Any, indices: Sequence[int]) -> list[str]:
    """The ``id`` of the records ``indices`` of ``source``, read in chunks."""
    getitems = getattr(source, "__getitems__", None)
    out: list[str] = []
    indices = [int(i) for i in indices]
    for start in range(0, len(indices), _READ_CHUNK):
        chunk = indices[start:start + _READ_CHUNK]
        records = getitems(chunk) if getitems is not None else [source[i] for i in chunk]
        out += [str(r["id"]) for r in records]
    return out


# --------------------------------------------------------------------------- runs
def run_directory(path: str | Path) -> Path:
    """The run directory of ``path``: a run directory, its ``checkpoints/`` or one step
    directory (what ``init_from=`` accepts)."""
    path = Path(path).expanduser().absolute()
    if (path / "state").is_dir() and path.parent.name == "checkpoints":
        return path.parent.parent
    if path.name == "checkpoints" and not (path / "checkpoints").is_dir():
        return path.parent
    return path


def read_record(run: str | Path) -> dict | None:
    """The record of the run ``run`` (any path :func:`run_directory` accepts), None when
    it has none."""
    path = run_directory(run) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable ({e}); train the run again to rewrite it") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("trained_on"), list):
        raise ConfigError(f"{path}: not a training-posts record of format {FORMAT}")
    return record


def make_record(cfg: TrainConfig, workdir: str | Path, sources: Mapping[str, Any]) -> dict:
    """This run's record: its own training posts, then its ``init_from`` run's record."""
    data = cfg.data
    posts = sources["posts"]
    train_folds = [f for f in range(data.num_folds) if f != data.val_fold]
    trained = pipeline.select(posts, train_folds) if "posts" in data.sources else np.zeros(0, np.int64)
    web = len(pipeline.select(sources["web"], None)) if "web" in data.sources and "web" in sources else 0
    from drugjax.training.inputs import source_identity

    own = {
        "run": str(Path(workdir).absolute()), "via": "this run", "world": world_of(posts),
        "identity": source_identity(posts), "sources": list(data.sources), "train_folds": train_folds,
        "val_fold": data.val_fold, "posts": sorted(post_ids(posts, trained)), "web_images": web,
        "validation_posts": int(len(pipeline.select(posts, [data.val_fold]))),
        "backbone_weights": cfg.model.backbone.weights, "init_from": cfg.init_from,
    }
    trained_on, unrecorded = [own], []
    if cfg.init_from:
        parent = run_directory(cfg.init_from)
        inherited = read_record(parent)
        if inherited is None:
            unrecorded.append(f"{parent} (init_from of {own['run']}) has no {RECORD}: what it trained on is unknown")
        else:
            for entry in inherited["trained_on"]:
                via = entry.get("via", "")
                entry = dict(entry, via=f"init_from of {own['run']}" if via == "this run" else via)
                trained_on.append(entry)
            unrecorded += list(inherited.get("unrecorded", []))
    return {"format": FORMAT, "written_by": "train.py", "run": own["run"], "complete": not unrecorded,
            "unrecorded": unrecorded, "trained_on": trained_on}


def write_record(cfg: TrainConfig, workdir: str | Path, sources: Mapping[str, Any]) -> dict:
    """Write ``<workdir>/training_posts.json`` (atomically) and return it."""
    record = make_record(cfg, workdir, sources)
    path = Path(workdir) / RECORD
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    return record


def overlap(record: Mapping, world: Mapping, ids: Sequence[str]) -> set[str]:
    """The ids of ``ids`` (posts of ``world``) that the record's runs trained on."""
    wanted = set(ids)
    seen: set[str] = set()
    for entry in record["trained_on"]:
        if same_world(entry.get("world") or {}, world):
            seen |= wanted.intersection(entry.get("posts") or [])
    return seen


# --------------------------------------------------------------------------- backbone
@dataclasses.dataclass
class BackboneCheckpoint:
    """A train.py checkpoint as a frozen feature extractor (``model.backbone.weights=RUN``)."""

    path: str  # as given
    run: Path
    step: Path  # the step directory used
    config: dict  # the run's resolved config, saved with the checkpoint
    state_sha256: str

    @property
    def backbone_name(self) -> str:
        return self.config["model"]["backbone"]["name"]

    @property
    def transform_input(self) -> bool:
        """As :func:`drugjax.training.build.make_backbone` resolved it for the run."""
        backbone = self.config["model"]["backbone"]
        transform = backbone.get("transform_input")
        return bool(backbone.get("weights") is not None if transform is None else transform)

    @property
    def weights_id(self) -> str:
        """What keys the feature cache: the checkpoint's state digest."""
        return f"checkpoint:{self.state_sha256}"

    def variables(self) -> dict:
        """The backbone's ``params`` and ``batch_stats`` (numpy)."""
        from drugjax.training.checkpoint import read_params

        tree = read_params(self.step)
        variables = {"params": tree["params"]["backbone"]}
        stats = (tree.get("batch_stats") or {}).get("backbone")
        if stats:
            variables["batch_stats"] = stats
        return variables


def step_directory(path: str | Path) -> Path:
    """The checkpoint step directory ``path`` names: a run directory or its
    ``checkpoints/`` (the latest step), or one step directory. Raises ConfigError."""
    given = path
    path = Path(path).expanduser().absolute()
    if (path / "state").is_dir():
        return path
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    steps = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()) if path.is_dir() else []
    if not steps:
        raise ConfigError(f"model.backbone.weights={given}: a directory with no train.py checkpoint; give a "
                          "train.py run directory (runs/NAME), one of its step directories "
                          "(runs/NAME/checkpoints/STEP) or a weights file (.npz/.safetensors/.pth)")
    return path / str(steps[-1])


def backbone_checkpoint(path: str | Path) -> BackboneCheckpoint:
    """The checkpoint ``path`` names (see :func:`step_directory`), checked to hold a
    trained backbone (an end-to-end run's). Reads the small JSON items only."""
    step = step_directory(path)
    try:
        config = json.loads(_json_item(step / "config"))
        meta = json.loads(_json_item(step / "meta"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.backbone.weights={path}: checkpoint {step} is unreadable ({e})") from None
    if config.get("model", {}).get("kind") != "end_to_end":
        raise ConfigError(f"model.backbone.weights={path}: that run trained heads on frozen features "
                          f"(model.kind={config.get('model', {}).get('kind')}); its checkpoint holds no backbone. "
                          f"Use the backbone it used (model.backbone.weights="
                          f"{config.get('model', {}).get('backbone', {}).get('weights')}) or an end-to-end run")
    return BackboneCheckpoint(str(path), run_directory(step), step, config, str(meta["state_sha256"]))


def _json_item(item: Path) -> str:
    """The text of an orbax JSON item (``JsonSave`` writes ``<item>/metadata``)."""
    return (item / "metadata").read_text()
