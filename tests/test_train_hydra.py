"""train.py through Hydra: every config composes, a tiny run via the compose API, a
2-job multirun (the relation-weight ablation) and, when the sweep extra is installed, a
2-trial Optuna study."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from train_support import write_root

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402  (registers the structured config)

CONF = str(ROOT / "conf")


def _tiny(tmp_path):
    """Overrides that shrink any experiment to seconds on a tiny dataset ROOT."""
    root = tmp_path / "root"
    if not root.exists():
        write_root(root)
    return [f"data.root={root}", f"data.data_dir={tmp_path / 'cache'}", "data.image_size=16",
            "model.backbone.name=tiny", "model.hidden=[16,16]", "data.batch_size=8", "data.eval_batch_size=8",
            "steps=3", "eval_every=3", "checkpoint_every=3", "log_every=1", "progress=false", "tensorboard=false",
            "data.augment=false"]


@pytest.mark.parametrize("experiment", ["finetune", "paper_mtl", "paper_mlp"])
def test_experiments_compose_into_the_schema(experiment):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    assert cfg.name == experiment
    assert cfg.model.kind == ("end_to_end" if experiment == "finetune" else "heads")
    assert list(cfg.model.tasks) == (["drug"] if experiment == "paper_mlp" else ["drug", "weed", "pills", "syrup"])
    with initialize_config_dir(config_dir=CONF, version_base=None):
        with pytest.raises(Exception, match="nosuchkey"):
            compose("train", overrides=[f"experiment={experiment}", "model.nosuchkey=1"])
        with pytest.raises(Exception, match="steps"):
            compose("train", overrides=["steps=many"])


def test_tiny_train_run_through_compose(tmp_path, capsys):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("train", overrides=_tiny(tmp_path) + [f"workdir={tmp_path / 'run'}", "tensorboard=true",
                                                            "data.mixture=[0.5,0.5]"])
    value = train.run(cfg)
    out = capsys.readouterr().out
    assert "accuracy" in out and "precision" in out and "recall" in out and "F1" in out and "AUC" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["step"] == 3 and results["objective_name"] == "auc"
    assert value == results["objective"] or (value != value and results["objective"] is None)
    assert (tmp_path / "run" / "checkpoints" / "3").is_dir()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert OmegaConf.to_container(cfg)["data"]["root"] == str(tmp_path / "root")
    assert results["config"]["data"]["mixture"] == [0.5, 0.5]


def _run_train(args, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_relation_weight_multirun_runs_two_jobs(tmp_path):
    sweep = tmp_path / "multi"
    _run_train(["-m", "experiment=paper_mtl", "model.relation_weight=0,1", *_tiny(tmp_path),
                f"hydra.sweep.dir={sweep}"], tmp_path)
    weights = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        results = json.loads((job / "results.json").read_text())
        assert results["step"] == 3
        weights[job.name] = results["config"]["model"]["relation_weight"]
    assert weights == {"0": 0.0, "1": 1.0}


def _has_optuna_sweeper() -> bool:
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _has_optuna_sweeper(),
                    reason="needs the sweep extra: pip install -e '.[sweep]'")
def test_optuna_study(tmp_path):
    sweep = tmp_path / "optuna"
    _run_train(["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *_tiny(tmp_path),
                f"hydra.sweep.dir={sweep}"], tmp_path)
    assert len([p for p in sweep.iterdir() if (p / "results.json").exists()]) == 2
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "best_value" in best


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.root={missing}", "is not a folder; see docs/data-format.md"),
        ("model.backbone.weights={missing}.npz", "missing.npz"),
        ("data.mixture=[1.0]", "needs one weight per entry of data.sources"),
    ],
)
def test_user_errors_end_in_one_clear_line_not_a_traceback(tmp_path, override, message):
    missing = tmp_path / "missing"
    args = [override.format(missing=missing), f"workdir={tmp_path / 'run'}", "progress=false",
            f"data.data_dir={tmp_path / 'cache'}"]
    if not override.startswith("data.root"):
        args += [f"data.root={tmp_path / 'root'}"]
        write_root(tmp_path / "root")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
