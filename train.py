"""Train the image model of Yang & Luo (2016): Inception-v1 -> shared trunk -> task heads.

    python train.py                                  # finetune on the embedded synthetic world
    python train.py experiment=paper_mtl             # the paper: frozen features + multitask trunk
    python train.py experiment=paper_mlp             # Table 1's single-task MLP baseline
    python train.py data.root=/path/to/ROOT steps=2000 data.batch_size=64
    python train.py -m model.relation_weight=0,0.25,0.5,0.75,1   # relation-weight ablation
    python train.py -m hparams_search=optuna         # Optuna TPE (pip install -e '.[sweep]')

Runs live in runs/<name> (runs/<name>-multirun/<overrides> for sweeps); running the same
command again resumes from the latest checkpoint there. See docs/training.md.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from drugjax.training.config import register_configs

register_configs()
log = logging.getLogger("train")


def run(cfg: DictConfig) -> float | None:
    """Train and evaluate per ``cfg``; returns the validation objective (None if the run
    was stopped by SIGTERM before finishing)."""
    from drugjax.training.loop import ConfigError, train_and_evaluate

    # absl (orbax, tfds) logs every dataset and checkpoint operation at INFO, which
    # Hydra's logging would print; keep the console to the progress bar and results.
    for name in ("absl", "jax"):
        logging.getLogger(name).setLevel(logging.WARNING)
    workdir = cfg.workdir
    if workdir is None:
        if not HydraConfig.initialized():
            raise ConfigError("workdir is not set and there is no Hydra run directory; pass workdir=PATH")
        workdir = HydraConfig.get().runtime.output_dir
    results = train_and_evaluate(cfg, workdir)
    if results["interrupted"]:
        print(f"stopped by SIGTERM at step {results['step']}; checkpoint saved in {workdir}; "
              "run the same command to resume", flush=True)
        return None
    val = results["val"]
    print(
        f"validation (drug head, fold {cfg.data.val_fold}, n={val['n']}, step {results['step']}): "
        f"accuracy {val['accuracy']:.3f}  precision {val['precision']:.3f}  recall {val['recall']:.3f}  "
        f"F1 {val['f1']:.3f}  AUC {val['auc']:.3f}   [{results['wall_time_s']:.0f} s, run dir {workdir}]",
        flush=True,
    )
    return results["objective"]


@hydra.main(config_path="conf", config_name="train", version_base=None)
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the validation metric named by ``objective``."""
    from drugjax.data.builders import BuildError
    from drugjax.models.weights import WeightsError
    from drugjax.training.checkpoint import CheckpointError
    from drugjax.training.loop import ConfigError, NonFiniteError

    try:
        return run(cfg)
    except (
        ConfigError, BuildError, WeightsError, NonFiniteError, CheckpointError, FileNotFoundError
    ) as e:
        # A user error or a diverged run: one clear sentence, no library traceback.
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr, flush=True)
        if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
            raise  # a sweep records the failed job and moves on
        sys.exit(1)


if __name__ == "__main__":
    main()
