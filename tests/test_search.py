"""The Optuna search on the sweep engine (drugjax.training.search): its outputs, a killed
search that resumes into the trials of an uninterrupted one, a trial's figures equal to
its configuration trained alone, failed trials told as failed, and a bad space refused."""

import csv
import dataclasses
import json

import numpy as np
import pytest

import drugjax.training.search as search
from drugjax.errors import UserError
from drugjax.training.config import ConfigError
from drugjax.training.sweep import HeadConfig, Schedule, train_sweep
from train_support import feature_table, tiny_config

SPACE = {
    "learning_rate": {"low": 1e-3, "high": 3e-2, "log": True},
    "relation_weight": {"low": 0.0, "high": 1.0},
    "hidden": {"choices": [[16, 16], [8]]},
}


def _config(**overrides):
    cfg = tiny_config(**{"model.kind": "heads", "steps": 12, "data.batch_size": 8, "sweep.chunk_steps": 5,
                         "search.enabled": True, "search.trials": 5, "search.batch": 3, "search.folds": [0, 1],
                         "search.space": SPACE, "name": "s", **overrides})
    return cfg


def _rows(workdir):
    with open(workdir / "search.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """One uninterrupted search, shared: (its run directory, what run_search returned)."""
    workdir = tmp_path_factory.mktemp("whole")
    out = search.run_search(_config(tensorboard=True), workdir, table=feature_table(),
                            command_overrides=["experiment=search", "seed=0"])
    return workdir, out


def test_a_search_writes_every_output(whole):
    tmp_path, out = whole
    rows = _rows(tmp_path)
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [r["round"] for r in rows] == ["0", "0", "0", "1", "1"]  # 5 trials asked 3 at a time
    assert {r["state"] for r in rows} == {"COMPLETE"}
    assert {r["hidden"] for r in rows} <= {"16-16", "8"}
    for r in rows:  # the value is the metric's mean over the two folds
        assert float(r["value"]) == pytest.approx((float(r["auc_fold0"]) + float(r["auc_fold1"])) / 2)
    assert out["trials"] == 5 and out["best_value"] == max(float(r["value"]) for r in rows)
    text = (tmp_path / "search.md").read_text()
    assert f"## Best: trial {out['best_trial']}" in text and "## Top 5" in text and "importances" in text
    page = (tmp_path / "search.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "http" not in page.replace("http-equiv", "")
    best = (tmp_path / "search-best.txt").read_text().splitlines()
    assert best[1].startswith("python train.py experiment=search seed=0 search.enabled=false name=s-best ")
    assert best[1].endswith("data.val_fold=0") and best[3].endswith("data.val_fold=1")
    assert list((tmp_path / "tensorboard" / "search").glob("trial-0000/events.out.tfevents.*"))
    assert (tmp_path / "search.db").is_file() and json.loads((tmp_path / "search.json").read_text())["trials"] == 5


def _trials(workdir):
    return [(r["trial"], r["round"], r["state"], r["learning_rate"], r["relation_weight"], r["hidden"], r["value"])
            for r in _rows(workdir)]


@pytest.mark.parametrize("moment", ["training", "telling"])
def test_a_killed_search_resumes_into_the_trials_of_an_uninterrupted_one(tmp_path, monkeypatch, moment, whole):
    import drugjax.training.sweep as sweep

    cfg, table = _config(), feature_table()
    # killed in the second round: after its first chunk of steps was saved, or after the
    # first of its trials was told
    rounds, real_train_round, tell, save = [], search._train_round, search._tell, sweep._PartState.save

    def save_then_die(*args):
        save(*args)
        raise KeyboardInterrupt

    def train_round(*args):
        rounds.append(1)
        if len(rounds) == 2 and moment == "training":
            monkeypatch.setattr(sweep._PartState, "save", save_then_die)
        return real_train_round(*args)

    def tell_one_then_die(study, round_, outcomes):
        if len(rounds) == 2 and moment == "telling":
            tell(study, dataclasses.replace(round_, pending=round_.pending[:1]), outcomes)
            raise KeyboardInterrupt
        tell(study, round_, outcomes)

    monkeypatch.setattr(search, "_train_round", train_round)
    monkeypatch.setattr(search, "_tell", tell_one_then_die)
    with pytest.raises(KeyboardInterrupt):
        search.run_search(cfg, tmp_path / "killed", table=table)
    monkeypatch.undo()
    if moment == "training":
        assert list((tmp_path / "killed" / search.STATE_DIR).glob("part-*.msgpack"))  # a chunk to resume from
    search.run_search(cfg, tmp_path / "killed", table=table)
    assert _trials(tmp_path / "killed") == _trials(whole[0])


def test_a_trial_scores_what_its_configuration_scores_trained_alone(whole):
    cfg, table = _config(), feature_table()
    row = _rows(whole[0])[3]
    params = {"learning_rate": row["learning_rate"], "relation_weight": row["relation_weight"], "hidden": row["hidden"]}
    values = search.trial_values(cfg, params)
    configs = [HeadConfig(**values, seed=cfg.seed, fold=fold, tasks=tuple(cfg.model.tasks)) for fold in (0, 1)]
    schedule = Schedule(steps=cfg.steps, batch_size=cfg.data.batch_size, optim=cfg.optim)
    alone = train_sweep(table, configs, schedule, engine="loop")  # the ordinary train step
    for result, fold in zip(alone, (0, 1)):
        assert result["val"]["auc"] == pytest.approx(float(row[f"auc_fold{fold}"]), abs=1e-6)
    overrides = search.trial_overrides(cfg, params)
    assert f"optim.learning_rate={float(row['learning_rate'])!r}" in overrides
    assert "model.hidden=[" + row["hidden"].replace("-", ",") + "]" in overrides


def test_a_diverged_trial_is_told_as_failed_not_as_a_poor_value(tmp_path):
    space = {"learning_rate": {"choices": [1e30, 1e-2]}}
    cfg = _config(**{"search.space": space, "search.trials": 4, "search.sampler": "random",
                     "optim.clip_norm": 0.0, "optim.warmup_steps": 0})
    search.run_search(cfg, tmp_path, table=feature_table())
    rows = _rows(tmp_path)
    failed = [r for r in rows if float(r["learning_rate"]) == 1e30]
    assert failed and all(r["state"] == "FAIL" and r["value"] == "nan" for r in failed)
    assert all(r["failure"].startswith("diverged") for r in failed)
    assert all(r["state"] == "COMPLETE" for r in rows if r not in failed)


def test_another_search_in_the_same_run_directory_is_refused(tmp_path):
    search.run_search(_config(**{"search.trials": 2}), tmp_path, table=feature_table())
    with pytest.raises(search.SearchError, match=r"holds another search \(2 trials, 2 finished; it differs in "
                                                 r"search.space.relation_weight.high\)"):
        search.run_search(_config(**{"search.trials": 2, "search.space": {**SPACE, "relation_weight":
                                                                         {"low": 0.0, "high": 0.5}}}),
                          tmp_path, table=feature_table())
    # more trials of the same search: it goes on from the two it has
    search.run_search(_config(**{"search.trials": 3}), tmp_path, table=feature_table())
    assert len(_rows(tmp_path)) == 3


@pytest.mark.parametrize("space, message", [
    ({"learning_rat": {"low": 1e-4, "high": 1e-2}}, "search.space.learning_rat: not a searchable parameter; "
                                                    "did you mean learning_rate?"),
    ({"learning_rate": {"low": 1e-2, "high": 1e-4}}, r"search.space.learning_rate: low \(0.01\) must be below high"),
    ({"weight_decay": {"low": 0.0, "high": 1e-2, "log": True}}, "a log range must start above 0"),
    ({"dropout": {"low": 0.0, "high": 1.0}}, r"search.space.dropout.high: dropout must be in \[0, 1\), got 1.0"),
    ({"hidden": {"choices": [[256, 256], [256, "wide"]]}}, "each choice must be a list of positive ints"),
    ({"hidden": {"choices": [256, 128]}}, "each choice must be a list of positive ints"),
    ({"hidden": {"low": 1, "high": 4}}, "trunk widths are categorical"),
    ({"decay": {"low": 0.8}}, r"expected \{low: .., high: ..\[, log: true\]\}"),
    ({}, "search.space is empty"),
])
def test_a_bad_search_space_is_refused_naming_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        search.parse_space(space)


def test_a_bad_space_on_the_command_line_ends_in_one_error_line(call_main, tmp_path):
    from drugjax.train import main

    result = call_main(main, "experiment=search", "data.preset=tiny", f"workdir={tmp_path / 'run'}",
                       "search.space.hidden.choices=[[16,0]]")
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "error: search.space.hidden: each choice must be a list of positive ints (the trunk's widths), got [16, 0]"]
    assert not (tmp_path / "run" / "search.db").exists()  # refused before anything was written


def test_the_rounds_sampler_depends_on_the_seed_and_the_round_only():
    cfg = _config()
    a, b = search.make_sampler(cfg.search, 3), search.make_sampler(cfg.search, 3)
    c = search.make_sampler(cfg.search, 4)
    draws = [s._random_sampler._rng.uniform() for s in (a, b, c)]
    assert draws[0] == draws[1] != draws[2]
    assert np.isfinite(draws).all()


def test_a_trial_whose_asking_was_cut_short_is_told_failed_and_the_search_goes_on(tmp_path):
    """Optuna commits each parameter of an asked trial on its own: a kill or a full disk
    between two of them leaves a running trial without all its parameters."""
    cfg = _config(**{"search.trials": 3})
    study = search.open_study(tmp_path, cfg)
    half = study.ask()
    half.suggest_float("learning_rate", 1e-3, 3e-2, log=True)  # then the process died
    search.run_search(cfg, tmp_path, table=feature_table())
    rows = _rows(tmp_path)
    assert [(r["trial"], r["state"]) for r in rows] == [("0", "FAIL"), ("1", "COMPLETE"), ("2", "COMPLETE")]
    assert rows[0]["failure"] == "the search stopped while asking for it (no hidden, relation_weight saved)"


@pytest.mark.parametrize("sqlite_error, said", [
    ("database or disk is full", "the disk is full: writing the study {db} failed (No space left on device)"),
    ("disk I/O error", "writing the study {db} failed (SQLite: disk I/O error): a full disk, a file-size limit"),
])
def test_a_study_write_that_fails_is_one_line_naming_the_database(tmp_path, monkeypatch, sqlite_error, said):
    import sqlite3

    import sqlalchemy.exc

    def refused(*args, **kwargs):  # as optuna's storage raises it from SQLAlchemy's, from SQLite's
        try:
            try:
                raise sqlite3.OperationalError(sqlite_error)
            except sqlite3.OperationalError as e:
                raise sqlalchemy.exc.OperationalError("COMMIT", {}, e) from e
        except sqlalchemy.exc.OperationalError as e:
            raise RuntimeError("An exception is raised during the commit.") from e

    cfg = _config(**{"search.trials": 2})
    monkeypatch.setattr(search, "_tell", refused)
    with pytest.raises(UserError) as caught:
        search.run_search(cfg, tmp_path, table=feature_table())
    assert str(caught.value).startswith(said.format(db=tmp_path / "search.db"))
    assert str(caught.value).endswith("run the same command again; the search goes on from its last saved trial")
    monkeypatch.undo()
    search.run_search(cfg, tmp_path, table=feature_table())  # with space again
    assert [r["state"] for r in _rows(tmp_path)] == ["COMPLETE", "COMPLETE"]
