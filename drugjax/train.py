"""Train the image model of Yang & Luo (2016): Inception-v1 -> shared trunk -> task heads.

    python train.py                                  # the paper's MT MLP on the embedded synthetic world
    python train.py experiment=finetune              # end to end from the stand-in backbone
    python train.py experiment=paper_mlp             # Table 1's single-task MLP baseline
    python train.py data=dir data.root=/path/to/ROOT steps=2000 data.batch_size=64
    python train.py -m model.relation_weight=0,0.25,0.5,0.75,1   # relation-weight ablation
    python train.py experiment=search                # Optuna, each round's trials in one program
    python train.py -m hparams_search=optuna         # Optuna through Hydra's sweeper, one trial at a time

A run lives in runs/<name>; running the same command again resumes from its latest
checkpoint. A multirun lives in runs/<name>-multirun/, one numbered directory per job
(<job>/.hydra/overrides.yaml says which), with summary.csv and summary.md across the
jobs; the same sweep again resumes its jobs, a different one there is refused. See
docs/training.md.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from drugjax.errors import USER_ERRORS, error_message, full_disk_reported
from drugjax.runtime import progress
from drugjax.runtime.overrides import exit_on_unknown_keys
from drugjax.runtime.runlock import RunLock
from drugjax.training.config import TrainConfig, register_configs
from drugjax.runtime.hydra_record import record_writer

register_configs()
log = logging.getLogger("train")


def _report(cfg: DictConfig, results: dict, workdir: str) -> None:
    def line(val: dict) -> str:
        baseline = 1 - val["positives"] / val["n"]
        # Said plainly: an accuracy at or under calling everything negative is no result.
        verdict = "" if val["accuracy"] > baseline else ", not above it"
        return (f"accuracy {val['accuracy']:.3f} (all-negative {baseline:.3f}{verdict})  "
                f"precision {val['precision']:.3f}  recall {val['recall']:.3f}  F1 {val['f1']:.3f}  "
                f"AUC {val['auc']:.3f}")

    val = results["val"]
    if cfg.model.kind == "classifier":
        print(f"validation (pretext classes, n={val['n']}), step {results['step']}: accuracy {val['accuracy']:.3f} "
              f"(most common class {val['majority_accuracy']:.3f})  top-5 {val['top5_accuracy']:.3f}  "
              f"loss {val['loss']:.3f}   [{results['wall_time_s']:.0f} s, run dir {workdir}]", flush=True)
        return
    print(f"validation (drug head, fold {cfg.data.val_fold}, n={val['n']}), last step {results['step']}: "
          f"{line(val)}   [{results['wall_time_s']:.0f} s, run dir {workdir}]", flush=True)
    best, best_step = results.get("best_val"), results.get("best_step")
    if best and best_step is not None and best_step != results["step"]:
        print(f"validation at the best step by {cfg.best_metric} ({best_step}): {line(best)}", flush=True)
    from drugjax.evaluation.tables import PAPER_TABLE1_AS_PRINTED

    acc, prec, rec, f1 = PAPER_TABLE1_AS_PRINTED["MT MLP" if len(cfg.model.tasks) > 1 else "MLP"]
    print(f"the paper's {'MT MLP' if len(cfg.model.tasks) > 1 else 'MLP'} (Table 1: ImageNet GoogLeNet features, "
          f"real Instagram posts, 5-fold CV): accuracy {acc / 100:.3f}  precision {prec / 100:.3f}  "
          f"recall {rec / 100:.3f}  F1 {f1:.2f}  (AUC not printed)", flush=True)


def run(cfg: DictConfig) -> float | None:
    """Train and evaluate per ``cfg``; returns the validation objective (None if the run
    was stopped by SIGTERM before finishing)."""
    from drugjax.training.config import ConfigError

    # absl (orbax, tfds) logs every dataset and checkpoint operation at INFO, which
    # Hydra's logging would print; keep the console to the progress bar and results.
    for name in ("absl", "jax"):
        logging.getLogger(name).setLevel(logging.WARNING)
    progress.set_enabled(cfg.progress)  # the world, the dataset builds, the features, the steps
    workdir = cfg.workdir
    if workdir is None:
        if not HydraConfig.initialized():
            raise ConfigError("workdir is not set and there is no Hydra run directory; pass workdir=PATH")
        workdir = HydraConfig.get().runtime.output_dir
    # A full disk is one line: the checkpoints, feature cache, world and datasets name
    # their own files; any other write of the run (metrics, results) names the run.
    if cfg.parallel.distributed:  # every host of one run runs this command into one directory
        with full_disk_reported(f"the run {workdir}"):
            return _run_locked(cfg, workdir)
    with RunLock(workdir), full_disk_reported(f"the run {workdir}"):  # one process per run directory
        return _run_locked(cfg, workdir)


def _run_locked(cfg: DictConfig, workdir: str) -> float | None:
    from drugjax.training.loop import train_and_evaluate

    (Path(workdir) / "error.txt").unlink(missing_ok=True)  # ours, from an earlier failed attempt
    if cfg.search.enabled:
        return _run_search(cfg, workdir)
    if cfg.sweep.enabled:
        return _run_grid(cfg, workdir)
    results = train_and_evaluate(cfg, workdir, on_start=record_writer(cfg))
    if results["interrupted"]:
        print(f"stopped by SIGTERM at step {results['step']}; checkpoint {results['step']} saved in "
              f"{workdir}; run the same command to resume", flush=True)
        return None
    _report(cfg, results, workdir)
    return results["objective"]


def _run_grid(cfg: DictConfig, workdir: str) -> float:
    """``sweep.enabled``: many head trainings in one run (drugjax.training.grid)."""
    from drugjax.training.config import to_config
    from drugjax.training.grid import run_grid

    out = run_grid(to_config(cfg), workdir, on_start=record_writer(cfg))
    print((Path(workdir) / "ablation.md").read_text(), flush=True)
    print(f"wrote ablation.csv, ablation.md{', ablation.png' if (Path(workdir) / 'ablation.png').exists() else ''}"
          f" in {workdir}", flush=True)
    objectives = [entry.get(cfg.objective, math.nan) for entry in out["summary"]]
    objectives = [value for value in objectives if value == value]  # not NaN
    return max(objectives) if objectives else math.nan


def _run_search(cfg: DictConfig, workdir: str) -> float:
    """``search.enabled``: an Optuna study trained in vmapped rounds (drugjax.training.search)."""
    from drugjax.training.config import to_config
    from drugjax.training.search import run_search

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    out = run_search(to_config(cfg), workdir, on_start=record_writer(cfg), command_overrides=overrides)
    print((Path(workdir) / "search.md").read_text(), flush=True)
    written = [name for name in ("search.csv", "search.md", "search.html", "search-best.txt", "search.db")
               if (Path(workdir) / name).exists()]
    print(f"wrote {', '.join(written)} in {workdir}", flush=True)
    return math.nan if out["best_value"] is None else out["best_value"]


def _log_to_file_only(message: str) -> None:
    # The console already has the message once (stderr); the job's log file keeps it too.
    record = logging.LogRecord("train", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main() -> float | None:
    """The command line: overrides naming no config key end in one ``error:`` line with
    the nearest key (exit 2) before Hydra starts; then Hydra's entry point."""
    exit_on_unknown_keys(TrainConfig, "train.py")
    return hydra_main()


@hydra.main(config_path="conf", config_name="train", version_base=None)
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the validation metric named by ``objective``."""
    try:
        return run(cfg)
    except USER_ERRORS as e:
        # A user error or a diverged run: one clear sentence, no library traceback.
        message = error_message(e)
        multirun = HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN"
        if multirun:
            job = HydraConfig.get()
            message = f"job {job.job.num} ({' '.join(job.overrides.task)}): {message}"
            Path(job.runtime.output_dir, "error.txt").write_text(message + "\n")
        print(f"error: {message}", file=sys.stderr, flush=True)
        _log_to_file_only(message)
        if multirun:
            return math.nan  # the sweep records the failed job (summary.csv) and goes on
        sys.exit(1)


if __name__ == "__main__":  # python -m drugjax.train
    from drugjax.runtime.huge_pages import reexec_with_huge_pages

    reexec_with_huge_pages(module="drugjax.train")
    main()
