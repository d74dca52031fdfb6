"""Hyperparameter search at the sweep engine's speed: an Optuna study asked in rounds.

``python train.py experiment=search`` comes here (``search.enabled``). Each round asks
the study for ``search.batch`` trials (Optuna's ask-and-tell interface; TPE with the
constant liar, so the trials of one round spread out instead of piling on one point),
trains every trial on every fold of ``search.folds`` in one call of
:func:`drugjax.training.sweep.train_sweep` — one compiled program per program shape
(trunk widths, dropout on or off) — and tells the study each trial's mean validation metric, or
FAIL for a trial that diverged (never a zero that TPE would read as a poor value).

The study lives in ``<run>/search.db`` (optuna's SQLite storage), so a killed search
resumes: finished trials are kept, and the round that was cut short is
trained again whole, with the same trials, so its figures are those an uninterrupted
search gets. Each round's sampler is seeded from ``search.seed`` and the round's index,
so a search's trials depend only on the seed and the history, not on when it was killed.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.errors import UserError, disk_full_error
from drugjax.runtime.progress import Progress
from drugjax.training.config import ConfigError, TrainConfig, as_dict, check_config
from drugjax.training.sweep import FeatureTable, HeadConfig, Schedule, train_sweep

log = logging.getLogger(__name__)

STUDY_NAME = "drugjax-search"
DATABASE = "search.db"
STATE_DIR = "search-state"  # the sweep engine's chunk saves of the round in training
SAMPLERS = ("tpe", "random", "qmc")
METRICS = ("auc", "f1", "accuracy", "precision", "recall")
DIRECTIONS = ("maximize", "minimize")
# parameter -> the train.py key it sets, and the values it allows (a test, in words).
PARAMETERS = {
    "learning_rate": ("optim.learning_rate", lambda v: v > 0, "> 0"),
    "decay": ("optim.decay", lambda v: 0 <= v < 1, "in [0, 1)"),  # RMSprop's
    "weight_decay": ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    "relation_weight": ("model.relation_weight", lambda v: v >= 0, ">= 0"),
    "dropout": ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    "hidden": ("model.hidden", None, "choices of lists of positive ints"),
}
# Keys of a run's config that do not change a trial's figures: a search may be resumed
# (or extended, with more search.trials) with other values of them.
_NOT_DEFINING = ("search.trials", "name", "workdir", "progress", "tensorboard", "log_every", "eval_every",
                 "checkpoint_every", "keep_checkpoints", "tags", "parallel", "data.workers", "data.data_dir",
                 "sweep")


class SearchError(UserError, ValueError):
    """A search that cannot start or resume (named, with the fix)."""


def _sqlite_error(error: BaseException) -> sqlite3.Error | None:
    """The SQLite error behind ``error`` (optuna wraps SQLAlchemy's, which wraps it)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, sqlite3.Error):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def study_writes(path: Path) -> Iterator[None]:
    """Inside the block, a write to the study's database that fails says so in one line
    naming ``path``, instead of optuna's traceback ("invalid data in the commit"). SQLite
    says a full disk ("database or disk is full"), but a file-size limit only as "disk I/O
    error": that line names the likely causes. Each trial's writes are committed one
    by one: the next run goes on from the last one."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        cause = _sqlite_error(e)
        if cause is None:
            raise
        then = "the search goes on from its last saved trial"
        full = disk_full_error(e, f"the study {path}", then)
        if full is not None:
            raise full from e
        raise SearchError(f"writing the study {path} failed (SQLite: {cause}): a full disk, a file-size limit "
                          f"(ulimit -f) or a failing disk says so. Free space there (or fix the disk) and run "
                          f"the same command again; {then}") from e


# --------------------------------------------------------------------------- the space
def _optuna():
    try:
        with warnings.catch_warnings():  # optuna 2.x's storage module warns about SQLAlchemy 2 on import
            warnings.simplefilter("ignore")
            import optuna
            import optuna.storages._rdb.models  # noqa: F401
    except ImportError:
        raise SearchError("search.enabled needs Optuna: pip install -e '.[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def widths_name(widths: list[int] | tuple[int, ...]) -> str:
    """Trunk widths as Optuna stores a categorical choice (a string): ``[512, 256]`` ->
    ``"512-256"``."""
    return "-".join(str(int(w)) for w in widths)


def parse_space(space: dict) -> dict[str, Any]:
    """``search.space`` as Optuna distributions, every mistake as one :class:`ConfigError`
    naming the key: an unknown parameter, ``low > high``, a log range reaching 0, a value
    outside what the parameter allows, widths that are not lists of positive ints."""
    optuna = _optuna()
    dist = optuna.distributions
    if not space:
        raise ConfigError("search.space is empty: name at least one parameter, e.g. "
                          "search.space.learning_rate={low:1e-4,high:1e-2,log:true} (experiment=search ships a space)")
    parsed = {}
    for name, spec in space.items():
        key = f"search.space.{name}"
        if name not in PARAMETERS:
            nearest = difflib.get_close_matches(name, list(PARAMETERS), n=1)
            hint = f"; did you mean {nearest[0]}?" if nearest else ""
            raise ConfigError(f"{key}: not a searchable parameter{hint} (searchable: {', '.join(PARAMETERS)})")
        if not isinstance(spec, dict):
            raise ConfigError(f"{key}: expected {{low: .., high: ..[, log: true]}} or {{choices: [..]}}, got {spec!r}")
        if name == "hidden":
            parsed[name] = dist.CategoricalDistribution(_width_choices(key, spec))
        elif "choices" in spec:
            parsed[name] = dist.CategoricalDistribution(_number_choices(key, name, spec))
        else:
            parsed[name] = _range(key, name, spec, dist)
    return parsed


def _width_choices(key: str, spec: dict) -> list[str]:
    if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
        raise ConfigError(f"{key}: trunk widths are categorical: {{choices: [[256, 256], [512, 256]]}}")
    names = []
    for choice in spec["choices"]:
        if (not isinstance(choice, list) or not choice
                or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in choice)):
            raise ConfigError(f"{key}: each choice must be a list of positive ints (the trunk's widths), "
                              f"got {choice!r}")
        names.append(widths_name(choice))
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: a choice is listed twice")
    return names


def _number_choices(key: str, name: str, spec: dict) -> list[float]:
    choices = spec["choices"]
    if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
        raise ConfigError(f"{key}: expected {{choices: [a, b, ...]}} (a non-empty list), got {spec!r}")
    for value in choices:
        _check_number(key, name, value)
    if len(set(choices)) != len(choices):
        raise ConfigError(f"{key}: a choice is listed twice")
    return [float(value) for value in choices]


def _range(key: str, name: str, spec: dict, dist) -> Any:
    unknown = set(spec) - {"low", "high", "log"}
    if unknown or not {"low", "high"} <= set(spec):
        raise ConfigError(f"{key}: expected {{low: .., high: ..[, log: true]}} or {{choices: [..]}}, got {spec!r}")
    low, high, use_log = spec["low"], spec["high"], spec.get("log", False)
    _check_number(f"{key}.low", name, low)
    _check_number(f"{key}.high", name, high)
    if not isinstance(use_log, bool):
        raise ConfigError(f"{key}.log must be true or false, got {use_log!r}")
    if not low < high:
        raise ConfigError(f"{key}: low ({low}) must be below high ({high})")
    if use_log and low <= 0:
        raise ConfigError(f"{key}: a log range must start above 0, got low={low}")
    return (dist.LogUniformDistribution if use_log else dist.UniformDistribution)(float(low), float(high))


def _check_number(key: str, name: str, value: Any) -> None:
    _, allowed, in_words = PARAMETERS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if not allowed(value):
        raise ConfigError(f"{key}: {name} must be {in_words}, got {value}")


def trial_values(cfg: TrainConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The HeadConfig fields a trial trains with: its parameters over the run's config."""
    values = {"relation_weight": cfg.model.relation_weight, "learning_rate": cfg.optim.learning_rate,
              "decay": cfg.optim.decay, "weight_decay": cfg.optim.weight_decay, "dropout": cfg.model.dropout,
              "hidden": tuple(cfg.model.hidden)}
    for name, value in params.items():
        values[name] = tuple(int(w) for w in value.split("-")) if name == "hidden" else float(value)
    return values


def trial_overrides(cfg: TrainConfig, params: dict[str, Any]) -> list[str]:
    """``key=value`` arguments of train.py that train one trial's configuration."""
    out = []
    for name, value in trial_values(cfg, params).items():
        if name in params:
            text = f"[{','.join(str(w) for w in value)}]" if name == "hidden" else repr(float(value))
            out.append(f"{PARAMETERS[name][0]}={text}")
    return out


# --------------------------------------------------------------------------- checks
def check(cfg: TrainConfig) -> None:
    check_config(cfg, 1)
    search = cfg.search
    if cfg.model.kind != "heads":
        raise ConfigError("search.enabled trains heads on precomputed features: set model.kind=heads "
                          "(experiment=search does)")
    if cfg.sweep.enabled:
        raise ConfigError("search.enabled and sweep.enabled both set: a run is a grid or a search, not both")
    if search.trials < 1 or search.batch < 1:
        raise ConfigError(f"search.trials and search.batch must be >= 1, got {search.trials} and {search.batch}")
    if search.sampler not in SAMPLERS:
        raise ConfigError(f"search.sampler must be one of {SAMPLERS}, got {search.sampler!r}")
    if search.metric not in METRICS:
        raise ConfigError(f"search.metric must be one of {METRICS}, got {search.metric!r}")
    if search.direction not in DIRECTIONS:
        raise ConfigError(f"search.direction must be one of {DIRECTIONS}, got {search.direction!r}")
    for fold in search.folds:
        if not 0 <= fold < cfg.data.num_folds:
            raise ConfigError(f"search.folds: fold {fold} is not in [0, data.num_folds={cfg.data.num_folds})")
    if len(set(search.folds)) != len(search.folds):
        raise ConfigError(f"search.folds lists a fold twice: {list(search.folds)}")
    if cfg.sweep.chunk_steps < 1:
        raise ConfigError(f"sweep.chunk_steps must be >= 1, got {cfg.sweep.chunk_steps}")
    parse_space(search.space)


def folds_of(cfg: TrainConfig) -> list[int]:
    return list(cfg.search.folds) or [cfg.data.val_fold]


# --------------------------------------------------------------------------- the study
def definition(cfg: TrainConfig) -> dict:
    """What fixes a search's trials and figures (the run's config without the keys that
    do not): a different one in the same run directory is another search."""
    config = as_dict(cfg)
    for dotted in _NOT_DEFINING:
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node.get(part, {})
        node.pop(last, None)
    return json.loads(json.dumps(config))  # plain JSON types, as the study stores them


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def open_study(workdir: Path, cfg: TrainConfig):
    """The run's study (created on first use); a study of another search is refused."""
    optuna = _optuna()
    path = workdir / DATABASE
    study = optuna.create_study(study_name=STUDY_NAME, storage=f"sqlite:///{path.resolve()}",
                                direction=cfg.search.direction, load_if_exists=True)
    wanted = definition(cfg)
    saved = study.user_attrs.get("definition")
    if saved is None or (saved != wanted and not study.get_trials(deepcopy=False)):
        study.set_user_attr("definition", wanted)  # a new study, or one that never got a trial
    elif saved != wanted:
        keys = ", ".join(_differences(saved, wanted)[:6])
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state.is_finished() for t in trials)
        raise SearchError(f"{path} holds another search ({len(trials)} trials, {finished} finished; it differs "
                          f"in {keys}): resume it with its settings, or give this one another name=...")
    return study


def make_sampler(search, round_index: int):
    """The sampler of one round, seeded from ``search.seed`` and the round's index: the
    trials a round asks for depend on the seed and the trials before it, never on whether
    the search was killed and resumed in between."""
    optuna = _optuna()
    seed = int(np.random.SeedSequence([search.seed, round_index]).generate_state(1)[0] % (2**31))
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "qmc":
        if not hasattr(optuna.samplers, "QMCSampler"):
            raise SearchError(f"search.sampler=qmc needs optuna>=3.0 (installed: {optuna.__version__}, which "
                              "hydra-optuna-sweeper 1.3 pins below 3); use tpe or random")
        return optuna.samplers.QMCSampler(seed=search.seed)  # a sequence: its index is the trial's
    with warnings.catch_warnings():  # constant_liar is "experimental" in optuna 2.x
        warnings.simplefilter("ignore")
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


@dataclasses.dataclass
class Round:
    index: int
    members: list  # the round's trials (FrozenTrial or Trial), in the order asked
    pending: list[int]  # numbers of the members still to be told


def _round_of(trial, latest: int) -> int:
    # A trial asked just before a kill may lack its attribute: it is the newest round's.
    return int(trial.user_attrs.get("round", latest))


def next_round(study, cfg: TrainConfig, space: dict) -> Round | None:
    """The round cut short by a kill (trained again whole, its finished trials not told
    twice), else a new round of asked trials, else None (the study has its trials)."""
    optuna = _optuna()
    _fail_half_asked(study, space)
    trials = study.get_trials(deepcopy=False)
    rounds = [int(t.user_attrs["round"]) for t in trials if "round" in t.user_attrs]
    latest = max(rounds, default=-1)
    running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    if running:
        index = min(_round_of(t, latest) for t in running)
        members = [t for t in trials if _round_of(t, latest) == index]
        return Round(index, members, [t.number for t in running if _round_of(t, latest) == index])
    if len(trials) >= cfg.search.trials:
        return None
    index = latest + 1
    study.sampler = make_sampler(cfg.search, index)
    members = []
    for _ in range(min(cfg.search.batch, cfg.search.trials - len(trials))):
        trial = study.ask(space)
        trial.set_user_attr("round", index)
        members.append(trial)
    return Round(index, members, [t.number for t in members])


def _fail_half_asked(study, space: dict) -> None:
    """Tell FAIL the trials whose asking was cut short (a kill or a full disk between the
    writes of their parameters): they cannot be trained, and a new trial takes their place."""
    optuna = _optuna()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if set(trial.params) != set(space):
            missing = ", ".join(sorted(set(space) - set(trial.params)))
            log.warning("trial %d was being asked when the search stopped (no %s saved): told as failed",
                        trial.number, missing)
            study._storage.set_trial_user_attr(trial._trial_id, "failure",
                                               f"the search stopped while asking for it (no {missing} saved)")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _train_round(cfg: TrainConfig, table, schedule: Schedule, round_: Round, workdir: Path) -> list[dict]:
    """Every member on every fold, in one sweep call: per member ``{"folds": {fold:
    metrics}, "value", "failure"}``."""
    folds = folds_of(cfg)
    common = {"seed": cfg.seed, "tasks": tuple(cfg.model.tasks), "input_norm": cfg.model.input_norm}
    configs = [HeadConfig(**trial_values(cfg, trial.params), fold=fold, **common)
               for trial in round_.members for fold in folds]
    results = train_sweep(table, configs, schedule, engine=cfg.sweep.engine, workdir=workdir / STATE_DIR)
    size = len(folds)
    return [_outcome(results[i * size:(i + 1) * size], cfg.search.metric) for i in range(len(round_.members))]


def _outcome(per_fold: list[dict], metric: str) -> dict:
    """A trial's record from its folds' results: the metric's mean over them, or why it
    failed."""
    metrics = {str(r["config"].fold): r["val"] for r in per_fold if not r["diverged"]}
    diverged = [str(r["config"].fold) for r in per_fold if r["diverged"]]
    if diverged:
        return {"folds": metrics, "value": None, "failure": f"diverged (non-finite loss) on fold {', '.join(diverged)}"}
    value = float(np.mean([m[metric] for m in metrics.values()]))
    if not math.isfinite(value):  # e.g. the AUC of a fold without positives
        return {"folds": metrics, "value": None, "failure": f"{metric} is not a number"}
    return {"folds": metrics, "value": value, "failure": None}


def _tell(study, round_: Round, outcomes: list[dict]) -> None:
    optuna = _optuna()
    for trial, outcome in zip(round_.members, outcomes):
        if trial.number not in round_.pending:
            continue  # told before the kill
        storage = study._storage  # optuna 2.x: user attributes of a trial asked by an earlier process
        storage.set_trial_user_attr(trial._trial_id, "folds", outcome["folds"])
        if outcome["failure"] is None:
            study.tell(trial.number, outcome["value"])
        else:
            storage.set_trial_user_attr(trial._trial_id, "failure", outcome["failure"])
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _forget_chunk_saves(workdir: Path) -> None:
    """The sweep engine's saves of rounds told: drugjax's own files, of no further use."""
    for path in (workdir / STATE_DIR).glob("part-*.msgpack"):
        path.unlink()


def run_search(cfg: TrainConfig, workdir: str | Path, *, table: FeatureTable | None = None,
               on_start: Callable[[Path], None] | None = None,
               command_overrides: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the study until it holds ``search.trials`` trials, then write
    search.csv, search.md, search.html and search-best.txt in ``workdir``.

    ``table``: the features to train on (default: the backbone's, cached, as train.py's).
    ``command_overrides``: the search's own train.py arguments, carried into the best
    trial's command line (those of ``search.*`` and the run's name are left out)."""
    from drugjax.training.grid import features_table
    from drugjax.training.search_report import write_outputs

    check(cfg)
    space = parse_space(cfg.search.space)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with study_writes(workdir / DATABASE):
        study = open_study(workdir, cfg)  # before the features: another search's directory is refused at once
    table = features_table(cfg) if table is None else table
    schedule = Schedule(steps=cfg.steps, batch_size=cfg.data.batch_size, optim=cfg.optim,
                        chunk_steps=cfg.sweep.chunk_steps)
    if on_start is not None:
        on_start(workdir)
    t0 = time.perf_counter()
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    with Progress(cfg.search.trials, "search trials", unit="trials") as bar:
        bar.update(min(finished, cfg.search.trials))
        while True:
            with study_writes(workdir / DATABASE):
                round_ = next_round(study, cfg, space)
            if round_ is None:
                break
            started = time.perf_counter()
            outcomes = _train_round(cfg, table, schedule, round_, workdir)
            with study_writes(workdir / DATABASE):
                _tell(study, round_, outcomes)
            _forget_chunk_saves(workdir)
            failed = sum(o["failure"] is not None for o in outcomes)
            log.info("search round %d: %d trials (%d told now, %d failed) in %.1f s", round_.index,
                     len(round_.members), len(round_.pending), failed, time.perf_counter() - started)
            bar.update(len(round_.pending))
    return write_outputs(study, cfg, workdir, seconds=time.perf_counter() - t0,
                         command_overrides=command_overrides or [])
