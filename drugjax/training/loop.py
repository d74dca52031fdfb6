"""The training loop: train, evaluate, checkpoint; resumes where the last run stopped.

:func:`train_and_evaluate` is what ``train.py`` calls. It reads top to bottom: the
devices, the data (:mod:`drugjax.training.inputs`), the model and its train state
(:mod:`drugjax.training.build`), the resume (:mod:`drugjax.training.resume`), then the
steps, with evaluation (:mod:`drugjax.training.validation`) and checkpoints
(:mod:`drugjax.training.checkpoint`) at their intervals. Running the same command again
after a kill continues from the latest checkpoint and, on CPU, ends with bitwise the same
parameters as an uninterrupted run (every random choice flows from the seed, the step and
the data iterator's saved position).
"""

from __future__ import annotations

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
from omegaconf import DictConfig

from drugjax.errors import UserError
from drugjax.training import build, inputs, provenance, resume
from drugjax.training.checkpoint import Checkpoints, read_params
from drugjax.training.config import ConfigError, TrainConfig, as_dict, check_config, to_config
from drugjax.training.validation import ClassifierEvaluator, Evaluator
from drugjax.metrics import METRICS, jsonable
from drugjax.training.metric_writer import MetricWriter
from drugjax.training.steps import DataParallel, make_steps

log = logging.getLogger(__name__)


class NonFiniteError(UserError, FloatingPointError):
    """The loss or a gradient became NaN or Inf."""


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


class _TrainLog:
    """Steps' metrics, kept on the device until a log boundary, then checked for NaN/Inf
    and written with the throughput of the steps since the last boundary."""

    def __init__(self, writer: MetricWriter, progress: _Progress, tasks: tuple[str, ...], *, global_batch: int,
                 units: str, ckpt_dir: Path, last_good: int | None):
        self.writer, self.progress, self.tasks = writer, progress, tasks
        self.global_batch, self.units, self.ckpt_dir = global_batch, units, ckpt_dir
        self.last_good = last_good  # the newest checkpoint, named when a step diverges
        self.pending: list[tuple[int, Any]] = []
        self.restart_window()

    def restart_window(self) -> None:
        """Start timing the throughput afresh (after compiling or evaluating)."""
        self.window_start, self.window_steps = time.time(), 0

    def add(self, step: int, metrics: Any) -> None:
        self.pending.append((step, metrics))
        self.window_steps += 1

    def flush(self) -> None:
        """Check and write what is pending; raises NonFiniteError before anything is saved."""
        if not self.pending:
            return
        host = jax.device_get([m for _, m in self.pending])
        for (step, _), m in zip(self.pending, host):
            _check_finite(step, m, self.tasks, self.ckpt_dir, self.last_good)
        last_step, last = self.pending[-1][0], host[-1]
        rate = self.window_steps * self.global_batch / max(time.time() - self.window_start, 1e-9)
        mean_loss = float(np.mean([h["loss"] for h in host]))
        values = {"loss": mean_loss, "grad_norm": float(last["grad_norm"]), f"{self.units}_per_s": rate}
        values.update({f"loss_{t}": float(v) for t, v in zip(self.tasks, np.atleast_1d(last["task_loss"]))})
        self.writer.write(last_step, "train", values)
        self.progress.finished(last_step, loss=f"{mean_loss:.4f}", **{f"{self.units}/s": f"{rate:.1f}"})
        self.pending.clear()
        self.restart_window()


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


def _any_process(flag: bool) -> bool:
    """``flag`` of any process (a SIGTERM may reach the hosts of a job at different times)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))


def _devices(cfg: TrainConfig) -> DataParallel:
    """Meet the other hosts (several-host runs) and pick this process's devices."""
    if cfg.parallel.distributed:
        # Every process runs this same program; JAX needs to meet them before any device
        # is touched. With no address, JAX detects SLURM/TPU settings. CPU collectives
        # across processes need gloo (GPUs use NCCL whatever this says).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=cfg.parallel.coordinator_address,
                                   num_processes=cfg.parallel.num_processes, process_id=cfg.parallel.process_id)
    devices = jax.local_devices()
    if cfg.parallel.num_devices is not None:
        if not 1 <= cfg.parallel.num_devices <= len(devices):
            raise ConfigError(f"parallel.num_devices={cfg.parallel.num_devices}, but {len(devices)} local devices exist")
        devices = devices[: cfg.parallel.num_devices]
    check_config(cfg, len(devices) * jax.process_count())
    if jax.process_count() > 1 and cfg.parallel.mode != "pmap":
        raise ConfigError("several hosts need parallel=pmap (the shard_map mesh here spans local devices only)")
    if jax.process_count() > 1 and cfg.parallel.num_devices is not None:
        raise ConfigError("parallel.num_devices restricts pmap to local devices; with several hosts use them all")
    return DataParallel(cfg.parallel.mode, None if cfg.parallel.num_devices is None else devices)


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
      precision, recall, f1, auc, loss of the drug head on the validation fold) and
      ``best_val`` (at ``best_step``), ``objective``, ``step``, ``interrupted``, the
      records used per source (``data``) and timings.
    """
    t_start = time.time()
    config = as_dict(cfg)
    cfg = to_config(cfg)
    workdir = Path(workdir).absolute()
    parallel = _devices(cfg)
    num_devices = parallel.num_devices
    workdir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    classifier = cfg.model.kind == "classifier"  # the pretext pre-training
    tasks = ("pretext",) if classifier else tuple(cfg.model.tasks)

    # The data and the model.
    init_key, state_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    data_root = None
    if classifier:
        data, data_counts = inputs.pretext_inputs(cfg, num_devices=num_devices)
    else:
        sources = inputs.load_sources(cfg) if sources is None else sources
        data_counts = inputs.check_sources(cfg, sources)
        data_root = getattr(sources.get("posts"), "root", None)  # None: sources passed in memory
        if data_root is not None:
            log.info("data ROOT %s", data_root)
    backbone_weights = build.load_backbone_weights(cfg)
    if cfg.model.kind in ("end_to_end", "classifier"):
        backbone = build.make_backbone(cfg, build.DTYPES[cfg.model.dtype])
        if not classifier:
            data = inputs.image_inputs(cfg, sources, num_devices=num_devices)
    else:
        # The paper's set-up: features computed once with the frozen backbone.
        backbone = build.make_backbone(cfg, jnp.float32, training=False)
        features = inputs.cached_features(
            cfg, sources, backbone, is_main=is_main,
            backbone_variables=lambda: build.backbone_variables(backbone, backbone_weights, init_key, cfg.data.image_size))
        data = inputs.feature_inputs(cfg, features, num_devices=num_devices)
    model = build.make_model(cfg, backbone)
    state = build.create_train_state(cfg, model, data.sample, init_key, state_key, backbone_weights)

    # Resume, or start; only then is anything written into the run directory.
    ckpt_dir = workdir / "checkpoints"
    ckpts = Checkpoints(ckpt_dir, keep=cfg.keep_checkpoints, best_metric=cfg.best_metric)
    restored = resume.restore(ckpts, state, data.train, config, cfg, workdir)
    start, state = restored if restored is not None else (0, state)
    if on_start is not None and is_main:
        on_start(workdir)
    if is_main and not classifier:
        # Which posts this run trains on, before its first step (and checkpoint); with
        # init_from, the union with that run's record (evaluate.py refuses a backbone
        # that saw a post it scores). The pretext pre-training sees no post.
        provenance.write_record(cfg, workdir, sources)
    # What an attempt killed after ``start`` wrote is dropped (without a checkpoint, all
    # of it): this run writes those steps again.
    writer = MetricWriter(workdir, tensorboard=cfg.tensorboard, enabled=is_main, resume_step=start)
    if restored is not None:
        log.info("resumed from %s at step %d", ckpt_dir, start)
    state = parallel.put_state(state)
    train_fn, eval_fn = make_steps(parallel, relation_weight=cfg.model.relation_weight, tasks=tasks,
                                   softmax=classifier)
    evaluator = (ClassifierEvaluator(eval_fn, parallel) if classifier
                 else Evaluator(eval_fn, parallel, column=tasks.index("drug")))
    progress = _Progress(cfg.steps, start, f"train {cfg.name}", enabled=cfg.progress and is_main)
    train_log = _TrainLog(writer, progress, tasks, global_batch=cfg.data.batch_size, units=data.units,
                          ckpt_dir=ckpt_dir, last_good=start if restored is not None else None)

    val: dict[str, float] | None = None
    interrupted = False
    step = start
    try:
        with _Stop() as stop:
            while step < cfg.steps:
                state, metrics = train_fn(state, parallel.put_batch(next(data.train)))
                step += 1
                train_log.add(step, metrics)
                if step == start + 1:
                    # The first step compiles: wait for it, so the bar says "compiling" for
                    # that time and the throughput window starts after it.
                    jax.block_until_ready(metrics)
                    progress.finished(step)
                    train_log.restart_window()
                elif cfg.parallel.block_every_step:
                    jax.block_until_ready(metrics)
                last = step == cfg.steps
                do_eval = last or step % cfg.eval_every == 0
                if do_eval or step % cfg.log_every == 0 or step % cfg.checkpoint_every == 0:
                    train_log.flush()  # raises on NaN/Inf before anything is saved
                if do_eval:
                    val = evaluator.run(state, data.val_batches())
                    writer.write(step, "val", val)
                    train_log.restart_window()  # keep evaluation out of the throughput
                # Read once, after the blocking work above (a SIGTERM may land during it):
                # the decision to save and the decision to stop are one and the same, and
                # on several hosts one host's signal stops them all at the same step.
                stop_now = _any_process(stop.requested) and not last
                if do_eval or step % cfg.checkpoint_every == 0 or stop_now:
                    train_log.flush()
                    ckpts.save(step, state.to_tree(), data_state=data.train.get_state(), config=config,
                               metrics={k: v for k, v in val.items() if k in METRICS + ("loss",)} if do_eval else None)
                    train_log.last_good = step
                if stop_now:
                    ckpts.wait()  # the checkpoint exists before the message says so
                    interrupted = True
                    log.warning("SIGTERM: saved a checkpoint at step %d; run the same command to resume", step)
                    break
        if val is None and not interrupted:
            # Nothing left to train (a finished run started again): evaluate the state.
            val = evaluator.run(state, data.val_batches())
    finally:
        progress.close()
        best_step = ckpts.best_step()
        ckpts.close()
        writer.close()
        if hasattr(data.train, "close"):
            data.train.close()

    results = {
        "name": cfg.name, "step": int(step), "steps": cfg.steps, "interrupted": interrupted, "val": val,
        "objective": None if val is None else val[cfg.objective], "objective_name": cfg.objective,
        "best_step": best_step, "best_val": _logged_val(writer.path, best_step), "data": data_counts,
        "data_root": None if data_root is None else str(data_root),
        "workdir": str(workdir), "devices": num_devices, "parallel": cfg.parallel.mode,
        "wall_time_s": round(time.time() - t_start, 2), "config": config,
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
