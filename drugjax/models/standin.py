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

Command line (the export of a pretext run is training's: :mod:`drugjax.training.export`)::

    python -m drugjax.models.standin verify
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from drugjax.errors import print_error
from drugjax.runtime.digest import digest_file
from drugjax.models.weights import Variables, WeightsError, load_backbone

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
                           "python -m drugjax.training.export runs/pretrain")
    info = json.loads(record.read_text())
    actual = digest_file(weights)
    if actual != info.get("sha256"):
        raise WeightsError(f"{weights}: sha256 {actual} differs from {info.get('sha256')} recorded in {record.name}: "
                           "the file is damaged or was replaced; reinstall drugjax or re-export it "
                           "(python -m drugjax.training.export runs/pretrain)")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drugjax.models.standin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="check the shipped weights against their sha256")
    parser.parse_args(argv)
    try:
        info = provenance()
    except WeightsError as err:
        print_error(err)
        return 2
    print(f"ok: {WEIGHTS_FILE} matches sha256 {info['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
