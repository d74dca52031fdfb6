"""Export the backbone of a finished pretext run as the stand-in shipped with drugjax.

``python train.py experiment=pretrain`` trains Inception-v1 on the pretext set; this
writes its backbone into the package (:mod:`drugjax.models.standin` loads it) with the
provenance record beside it. Training makes the weights, the model package loads them.

Command line::

    python -m drugjax.training.export runs/pretrain [--commit SHA]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.errors import print_error
from drugjax.models import standin
from drugjax.models.weights import WeightsError, to_torchvision
from drugjax.runtime.digest import digest_file
from drugjax.training.checkpoint import read_params


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (what ``np.load`` reads) whose bytes depend on the arrays alone: np.savez
    stamps each member with the time, so the same weights would get another sha256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            with archive.open(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)


def export(run: str | Path, weights: Path = standin.WEIGHTS_FILE, record: Path = standin.PROVENANCE_FILE, *,
           commit: str | None = None) -> dict[str, Any]:
    """Write the backbone of a finished ``experiment=pretrain`` run and its provenance.

    ``commit``: the commit the run was trained at (default: the checkout's HEAD now).
    """
    run = Path(run)
    results_path = run / "results.json"
    if not results_path.exists():
        raise WeightsError(f"{run}: no results.json; finish the run first (python train.py experiment=pretrain)")
    results = json.loads(results_path.read_text())
    config = results["config"]
    if config["model"]["kind"] != "classifier" or config["data"]["kind"] != "pretext":
        raise WeightsError(f"{run}: not a pretext run (model.kind={config['model']['kind']}); "
                           "export the run of python train.py experiment=pretrain")
    if results["interrupted"] or results["step"] != results["steps"]:
        raise WeightsError(f"{run}: stopped at step {results['step']} of {results['steps']}; "
                           "run the same command again to finish it first")
    state = read_params(run)
    variables = {"params": state["params"]["backbone"], "batch_stats": state["batch_stats"]["backbone"]}
    arrays = {k: np.asarray(v, np.float16) for k, v in to_torchvision(variables).items()}
    weights.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(weights, arrays)
    transform = config["model"]["backbone"]["transform_input"]
    info = {
        "what": "Inception-v1 backbone pre-trained on drugjax's pretext set of everyday objects (not ImageNet)",
        "command": "python train.py experiment=pretrain",
        "export_command": f"python -m drugjax.training.export {Path('runs', run.name) if run.parent.name == 'runs' else run}",
        "commit": commit or _git_commit(),
        "seed": config["seed"],
        "pretext": {"seed": config["data"]["seed"], "image_size": config["data"]["image_size"],
                    "train_images": results["data"]["pretext_train"]["records"],
                    "val_images": results["data"]["pretext_val"]["records"],
                    "classes": results["data"]["pretext_train"]["classes"]},
        "steps": results["steps"], "batch_size": config["data"]["batch_size"],
        "optimizer": config["optim"],
        "pretext_val_accuracy": results["val"]["accuracy"],
        "pretext_val_top5_accuracy": results["val"]["top5_accuracy"],
        "most_common_class_accuracy": results["val"]["majority_accuracy"],
        "wall_time_s_last_invocation": results["wall_time_s"],
        "normalisation": standin.NORMALISATION,
        "transform_input": bool(transform),
        "storage": "float16 .npz with torchvision GoogLeNet keys (loaded as float32)",
        "sha256": digest_file(weights),
    }
    record.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drugjax.training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the run directory of python train.py experiment=pretrain, e.g. runs/pretrain")
    parser.add_argument("--commit", help="the commit the run was trained at (default: HEAD)")
    args = parser.parse_args(argv)
    try:
        info = export(args.run, commit=args.commit)
    except WeightsError as err:
        print_error(err)
        return 2
    weights = standin.WEIGHTS_FILE
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB, sha256 {info['sha256'][:16]}...) "
          f"and {standin.PROVENANCE_FILE}; pretext accuracy {info['pretext_val_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
