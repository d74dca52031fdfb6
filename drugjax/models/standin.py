"""The stand-in backbone shipped with drugjax: Inception-v1 pre-trained on the pretext set.

Not ImageNet: no machine of this project can download ImageNet or torchvision's weights,
so ``python train.py experiment=pretrain`` trains Inception-v1 to tell apart the
everyday objects of :mod:`drugjax.synthetic.pretext` (no drug class among them), and this
module ships its backbone (float16 on disk, float32 once loaded) with a provenance
record beside it: the command, seed, commit, pretext accuracy, wall time, the input
convention (ImageNet mean/std normalisation, ``transform_input``) and the file's sha256.
Its features are fitted to drugjax's synthetic world; on real photographs use
torchvision's weights (docs/training.md).

``model.backbone.weights=synthetic`` selects it (the default on the synthetic world);
every load checks the file against the recorded sha256.

Command line::

    python -m drugjax.models.standin export runs/pretrain   # after experiment=pretrain
    python -m drugjax.models.standin verify
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

from drugjax.runtime.digest import digest_file
from drugjax.models.weights import Variables, WeightsError, load_backbone, to_torchvision

#: The name that selects it: ``model.backbone.weights=synthetic``.
NAME = "synthetic"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "synthetic-standin.npz"
PROVENANCE_FILE = WEIGHTS_DIR / "synthetic-standin.json"
#: Inputs as the image pipeline gives them (drugjax.data.augment.normalize).
NORMALISATION = "ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) on [0, 1] RGB"


def provenance(weights: Path = WEIGHTS_FILE, record: Path = PROVENANCE_FILE) -> dict[str, Any]:
    """The provenance record, after checking the weights file against its sha256."""
    if not weights.exists() or not record.exists():
        raise WeightsError(f"the stand-in backbone is not installed ({weights} or {record} is missing); "
                           "reinstall drugjax, or rebuild it: python train.py experiment=pretrain, then "
                           "python -m drugjax.models.standin export runs/pretrain")
    info = json.loads(record.read_text())
    actual = digest_file(weights)
    if actual != info.get("sha256"):
        raise WeightsError(f"{weights}: sha256 {actual} differs from {info.get('sha256')} recorded in {record.name}: "
                           "the file is damaged or was replaced; reinstall drugjax or re-export it "
                           "(python -m drugjax.models.standin export runs/pretrain)")
    return info


def load(weights: Path = WEIGHTS_FILE, record: Path = PROVENANCE_FILE) -> Variables:
    """The stand-in's backbone variables (float32), verified by sha256."""
    provenance(weights, record)
    variables = load_backbone(weights, include_classifier=False)
    return {kind: _as_float32(tree) for kind, tree in variables.items()}


def _as_float32(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _as_float32(v) for k, v in tree.items()}
    return np.asarray(tree, np.float32)


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


def export(run: str | Path, weights: Path = WEIGHTS_FILE, record: Path = PROVENANCE_FILE, *,
           commit: str | None = None) -> dict[str, Any]:
    """Write the backbone of a finished ``experiment=pretrain`` run and its provenance.

    ``commit``: the commit the run was trained at (default: the checkout's HEAD now).
    """
    from drugjax.training.checkpoint import read_params

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
        "export_command": f"python -m drugjax.models.standin export {Path('runs', run.name) if run.parent.name == 'runs' else run}",
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
        "normalisation": NORMALISATION,
        "transform_input": bool(transform),
        "storage": "float16 .npz with torchvision GoogLeNet keys (loaded as float32)",
        "sha256": digest_file(weights),
    }
    record.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drugjax.models.standin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write the backbone of a finished experiment=pretrain run into the package")
    e.add_argument("run", help="the run directory, e.g. runs/pretrain")
    e.add_argument("--commit", help="the commit the run was trained at (default: HEAD)")
    sub.add_parser("verify", help="check the shipped weights against their sha256")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            info = export(args.run, commit=args.commit)
            print(f"wrote {WEIGHTS_FILE} ({WEIGHTS_FILE.stat().st_size / 1e6:.1f} MB, sha256 {info['sha256'][:16]}...) "
                  f"and {PROVENANCE_FILE}; pretext accuracy {info['pretext_val_accuracy']:.3f}")
        else:
            info = provenance()
            print(f"ok: {WEIGHTS_FILE} matches sha256 {info['sha256']}")
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
