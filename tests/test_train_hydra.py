"""train.py through Hydra: every config composes, a tiny run via the compose API, the
command line in this process (refusals, a failed multirun job), one real ``train.py``
process (a 2-job multirun, the relation-weight ablation) and, when the sweep extra is
installed, a 2-trial Optuna study (slow set)."""

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
from drugjax import train  # noqa: E402  (registers the structured config)

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
    results_val = json.loads((tmp_path / "run" / "results.json").read_text())["val"]
    baseline = 1 - results_val["positives"] / results_val["n"]
    assert f"(all-negative {baseline:.3f}" in out  # the trivial baseline beside accuracy
    assert ("not above it" in out) == (results_val["accuracy"] <= baseline)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["step"] == 3 and results["objective_name"] == "auc"
    assert value == results["objective"] or (value != value and results["objective"] is None)
    assert (tmp_path / "run" / "checkpoints" / "3").is_dir()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert OmegaConf.to_container(cfg)["data"]["root"] == str(tmp_path / "root")
    assert results["data_root"] == str(tmp_path / "root")  # the ROOT the run read, in plain sight
    assert results["config"]["data"]["mixture"] == [0.5, 0.5]


def test_relation_weight_ablation_as_one_run(tmp_path, capsys):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("train", overrides=["experiment=ablation_relation_weight", *_tiny(tmp_path),
                                          f"workdir={tmp_path / 'run'}", "steps=6", "sweep.chunk_steps=4",
                                          "sweep.relation_weights=[0.0,0.5,1.0]", "sweep.folds=[0,1]",
                                          "sweep.seeds=[0,1]"])
    value = train.run(cfg)
    out = capsys.readouterr().out
    rows = (tmp_path / "run" / "ablation.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 * 2 and rows[0].startswith("relation_weight,")
    md = (tmp_path / "run" / "ablation.md").read_text()
    assert "12 trainings" in md and md.count("\n| 0") + md.count("\n| 1") == 3
    assert (tmp_path / "run" / "ablation.png").stat().st_size > 1000
    assert "ablation.csv" in out and 0.0 <= value <= 1.0


def _run_train(args, tmp_path, returncode=0):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == returncode, proc.stderr[-3000:]
    return proc


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_relation_weight_multirun_runs_two_jobs_and_refuses_another_sweep_there(tmp_path):
    sweep = tmp_path / "multi"
    _run_train(["-m", "experiment=paper_mtl", "model.relation_weight=0,1", *_tiny(tmp_path),
                f"hydra.sweep.dir={sweep}"], tmp_path)
    weights = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        results = json.loads((job / "results.json").read_text())
        assert results["step"] == 3
        weights[job.name] = results["config"]["model"]["relation_weight"]
        assert "model.relation_weight=" in (job / ".hydra" / "overrides.yaml").read_text()
    assert weights == {"0": 0.0, "1": 1.0}
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("job,overrides,status,objective") and len(summary) == 3
    assert "model.relation_weight=1" in summary[2] and ",finished," in summary[2]
    assert (sweep / "summary.md").exists()

    # Another sweep in the same directory would mix its jobs with these: refused, nothing written.
    before = _files(sweep)
    proc = _run_train(["-m", "experiment=paper_mtl", "model.relation_weight=0,0.5", *_tiny(tmp_path),
                       f"hydra.sweep.dir={sweep}"], tmp_path, returncode=1)
    assert "holds another sweep" in proc.stderr and "Traceback" not in proc.stderr
    assert _files(sweep) == before


def test_a_failed_multirun_job_is_one_line_and_the_sweep_goes_on(tmp_path, call_main):
    sweep = tmp_path / "multi"
    tiny = [a for a in _tiny(tmp_path) if not a.startswith("eval_every")]
    ran = call_main(train.main, "-m", "experiment=paper_mtl", "eval_every=3,0", *tiny, f"hydra.sweep.dir={sweep}",
                    cwd=tmp_path)
    assert ran.code == 0 and ran.err.count("eval_every must be >= 1") == 1
    assert "Traceback" not in ran.err + ran.out
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert ",finished," in rows[1] and ",failed," in rows[2] and "eval_every must be >= 1" in rows[2]


def test_a_refused_run_leaves_the_run_directory_as_it_was(tmp_path, call_main):
    run = tmp_path / "run"
    tiny = [a for a in _tiny(tmp_path) if not a.startswith("tensorboard")]
    assert call_main(train.main, *tiny, f"hydra.run.dir={run}", "tensorboard=true", cwd=tmp_path).code == 0
    assert (run / ".hydra" / "overrides.yaml").exists() and list((run / "tensorboard").iterdir())
    before = {k: v for k, v in _files(run).items() if not k.endswith(".log")}
    refused = call_main(train.main, *tiny, f"hydra.run.dir={run}", "tensorboard=true", "model.hidden=[8]",
                        cwd=tmp_path)
    assert refused.code == 1 and refused.err.count("holds a run with a different config") == 1
    assert "Traceback" not in refused.err + refused.out
    assert {k: v for k, v in _files(run).items() if not k.endswith(".log")} == before


def test_data_dir_without_a_root_is_refused(tmp_path, call_main):
    refused = call_main(train.main, "data=dir", f"workdir={tmp_path / 'run'}", "progress=false", cwd=tmp_path)
    assert refused.code == 1
    assert "data.root is required" in refused.err and "Traceback" not in refused.err
    assert refused.err.count("error:") == 1
    assert not (tmp_path / "run").exists()


def _has_optuna_sweeper() -> bool:
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.slow  # Hydra's Optuna sweeper in a real process; the search itself: training/sweep.py
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
def test_user_errors_end_in_one_clear_line_not_a_traceback(tmp_path, override, message, call_main):
    missing = tmp_path / "missing"
    args = [override.format(missing=missing), f"workdir={tmp_path / 'run'}", "progress=false",
            f"data.data_dir={tmp_path / 'cache'}"]
    if not override.startswith("data.root"):
        args += [f"data.root={tmp_path / 'root'}"]
        write_root(tmp_path / "root")
    if override.startswith("data.mixture"):
        args += ["experiment=finetune"]  # mixing sources is the image pipeline's (end to end)
    refused = call_main(train.main, *args, cwd=tmp_path)
    assert refused.code == 1
    assert message in refused.err and refused.err.count(message) == 1
    assert "Traceback" not in refused.err + refused.out


@pytest.mark.parametrize("typo", ["modle.kind=heads", "+modle.kind=heads", "model.knd=heads", "~model.knd"])
def test_a_mistyped_key_is_one_error_line_naming_the_nearest_key(tmp_path, typo, call_main):
    refused = call_main(train.main, typo, f"workdir={tmp_path / 'run'}", cwd=tmp_path)
    assert refused.code == 2
    assert refused.err.strip().splitlines() == [refused.err.strip()] and refused.err.startswith("error: ")
    assert "did you mean model.kind?" in refused.err and "Traceback" not in refused.err + refused.out
    assert not (tmp_path / "run").exists()


def test_groups_and_hydra_keys_are_not_mistaken_for_typos():
    from drugjax.conf import groups
    from drugjax.runtime.overrides import check_overrides
    from drugjax.training.config import TrainConfig

    check_overrides(["-m", "experiment=finetune", "data=dir", "model.backbone.name=tiny", "+data.root=/x",
                     "hydra.run.dir=/tmp/x", "hydra/launcher=basic", "model.hidden=[8]", "--cfg", "job",
                     "search.space.learning_rate.high=0.1", "+search.space.dropout={choices:[0.0,0.5]}"],
                    TrainConfig, groups(), "train.py")  # keys inside search.space are the search's to check
