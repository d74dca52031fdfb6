"""How well frozen backbone features transfer to the drug head: random init vs the stand-in.

For each world preset and each backbone (``none``: a random Inception-v1, ``synthetic``:
the stand-in pre-trained on the pretext set, drugjax/weights/), the features of every
post and web image are extracted once (timed when not cached: the images/s of feature
extraction), then, over the world's 5 folds (each validating once):

* linear probe: a logistic regression on standardised features of the training folds'
  posts (the drug label), scored on the validation fold;
* MT MLP: the paper's multitask trunk and heads on posts + web images (relation weight
  0.5, RMSprop; the sweep engine, all folds in one program), with the default
  experiment's features and schedule (``--features default``) or torchvision's 1024-d
  pool, 600 steps at 1e-3 (``--features last``).

Prints a table of drug-head AUC and F1 (mean ± std over the folds) with the all-negative
accuracy beside the accuracy, the command, the machine and the load average.

    python bench/transfer.py [--presets small hard] [--image-size 96] [--weights none synthetic PATH...]
                             [--features default|last]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config(preset: str, weights: str, image_size: int, transform_input: bool | None = None):
    from drugjax.training.config import TrainConfig

    cfg = TrainConfig()
    cfg.name = "bench_transfer"
    cfg.model.kind = "heads"
    cfg.model.backbone.trainable = False
    cfg.model.backbone.weights = weights
    cfg.model.backbone.transform_input = transform_input
    cfg.data.preset = preset
    cfg.data.image_size = image_size
    cfg.data.batch_size = 64
    cfg.data.eval_batch_size = 128
    cfg.steps = 600
    cfg.optim.learning_rate = 1e-3
    cfg.optim.warmup_steps = 20
    cfg.sweep.enabled = True
    cfg.sweep.relation_weights = [0.5]
    cfg.sweep.folds = [0, 1, 2, 3, 4]
    cfg.sweep.seeds = [0]
    return cfg


def _paper_features(cfg):
    """``cfg`` with the default experiment's features and schedule (conf/experiment/paper_mtl.yaml:
    four pooled blocks, mirror-averaged, LayerNorm before the trunk, its steps and learning rate)."""
    from omegaconf import OmegaConf

    exp = OmegaConf.load(ROOT / "conf" / "experiment" / "paper_mtl.yaml")
    cfg.model.backbone.pool_layers = list(exp.model.backbone.pool_layers)
    cfg.model.backbone.flip_average = bool(exp.model.backbone.flip_average)
    cfg.model.input_norm = bool(exp.model.input_norm)
    cfg.steps = int(exp.steps)
    cfg.optim.learning_rate = float(exp.optim.learning_rate)
    return cfg


def _features(cfg):
    """The cached features and, when they had to be extracted, images/s."""
    from drugjax.training import grid, inputs

    sources = inputs.load_sources(cfg)
    names = sorted(set(cfg.data.sources) | {"posts"})
    t0 = time.perf_counter()
    features = grid.backbone_features(cfg, sources)
    seconds = time.perf_counter() - t0
    images = sum(len(features[n]["kind"]) for n in names)
    return sources, features, (images / seconds if seconds > 5 else None), images


def _linear_probe(features, num_folds: int) -> dict[str, list[float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from drugjax.metrics import binary_metrics
    from drugjax.tasks import INSTAGRAM_POSITIVE

    posts = features["posts"]
    x, y, fold = posts["features"], (posts["kind"] == INSTAGRAM_POSITIVE).astype(int), posts["fold"]
    out: dict[str, list[float]] = {"auc": [], "f1": [], "accuracy": [], "all_negative_accuracy": []}
    for k in range(num_folds):
        train, val = fold != k, fold == k
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x[train]), y[train])
        m = binary_metrics(y[val], model.predict_proba(scaler.transform(x[val]))[:, 1], 0.5)
        for key in out:
            out[key].append(m[key])
    return out


def _mt_mlp(cfg, sources) -> dict[str, list[float]]:
    from drugjax.training.grid import run_grid

    with tempfile.TemporaryDirectory() as workdir:
        out = run_grid(cfg, workdir, sources=sources)
    entry = out["summary"][0]
    return {key: (entry[key], entry[f"{key}_std"]) for key in ("auc", "f1", "accuracy", "all_negative_accuracy")}


def _fmt(values) -> str:
    mean, std = (values if isinstance(values, tuple) else (float(np.mean(values)), float(np.std(values))))
    return f"{mean:.3f} ± {std:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "hard"])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--weights", nargs="+", default=["none", "synthetic"],
                        help="backbones to compare: none, synthetic or weights files")
    parser.add_argument("--transform-input", choices=["auto", "true", "false"], default="auto",
                        help="of weights files: auto = torchvision's convention (true)")
    parser.add_argument("--features", choices=["default", "last"], default="default",
                        help="default: the default experiment's (four pooled blocks, mirror-averaged, LayerNorm, "
                             "2000 steps at 3e-4); last: torchvision's 1024-d pool (600 steps at 1e-3)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    load_start = os.getloadavg()
    rows = []
    for preset in args.presets:
        for weights in args.weights:
            transform = None if args.transform_input == "auto" else args.transform_input == "true"
            cfg = _config(preset, weights, args.image_size, transform)
            if args.features == "default":
                cfg = _paper_features(cfg)
            sources, features, rate, images = _features(cfg)
            probe = _linear_probe(features, cfg.data.num_folds)
            mlp = _mt_mlp(cfg, sources)
            rows.append((preset, weights, images, rate, probe, mlp))
            print(f"{preset} {weights}: probe AUC {_fmt(probe['auc'])}, MT MLP AUC {_fmt(mlp['auc'])}", flush=True)
    print(f"\ncommand: python bench/transfer.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
          f"{' '.join(f'{v:.1f}' for v in load_start)} at start, {' '.join(f'{v:.1f}' for v in os.getloadavg())} at end")
    what = ("the default experiment's (inception3b+4b+4e+5b pooled, mirror-averaged, LayerNorm; 2000 steps at 3e-4)"
            if args.features == "default" else "torchvision's 1024-d pool (600 steps at 1e-3)")
    print(f"drug head, 5 folds of the world's posts (each validating once), {args.image_size} px, frozen features: "
          f"{what}\n")
    print("| world | backbone | linear probe AUC | linear probe F1 | MT MLP AUC | MT MLP F1 | MT MLP accuracy (all-negative) "
          "| feature extraction |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, weights, images, rate, probe, mlp in rows:
        speed = f"{rate:.0f} img/s ({images} images)" if rate else "cached"
        print(f"| {preset} | { {'none': 'random init', 'synthetic': 'stand-in'}.get(weights, weights)} | {_fmt(probe['auc'])} | "
              f"{_fmt(probe['f1'])} | {_fmt(mlp['auc'])} | {_fmt(mlp['f1'])} | {mlp['accuracy'][0]:.3f} "
              f"({mlp['all_negative_accuracy'][0]:.3f}) | {speed} |")


if __name__ == "__main__":
    main()
