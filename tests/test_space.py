"""Sample spaces: continuous ranges, nested and zipped axes; grid coverage, exactly-once sweeps over them,
suggestions of adaptive samplers, exports and errors."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from larvastudy.api import run_batch
from larvastudy.definition.batch import Batch, batch_from_kwargs, load_batch
from larvastudy.definition.space import Space
from larvastudy.errors import SpecError
from larvastudy.export import export_study
from larvastudy.inspect.report import write_report
from larvastudy.inspect.sensitivity import importances
from larvastudy.study import load_study, open_storage, storage_url
from larvastudy.study.distributions import fit_distributions, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

NESTED = {"model": {"values": ["explorer", "navigator"], "when": {"navigator": {"decay_coef": [0.1, 0.5, 1.0]}}},
          "Npoints": [2, 3]}


def dish(sample, **changes) -> Batch:
    return batch_from_kwargs(**{"experiment": "dish", "sample": sample, "fixed": {"duration": 0.05}, "Nsims": 1,
                                "name": "space", **changes})


def test_nested_axis_sweeps_its_sub_axis_only_under_its_value():
    batch = dish(NESTED, Nsims=2)
    assert batch.points() == [{"model": "explorer", "Npoints": 2}, {"model": "explorer", "Npoints": 3},
                              *({"model": "navigator", "decay_coef": d, "Npoints": n}
                                for d in (0.1, 0.5, 1.0) for n in (2, 3))]
    assert batch.grid_size == (1 + 3) * 2 * 2 and batch.parameters() == ["model", "decay_coef", "Npoints"]
    assert batch.space.describe("decay_coef") == "0.1, 0.5, 1.0 when model = navigator"
    olfactor = batch.config(batch.points()[2])["larva_groups"]
    assert next(iter(olfactor.values()))["model"]["brain"]["olfactor"]["decay_coef"] == 0.1


def test_zipped_axes_vary_together():
    batch = dish({"crawler.freq": [1.2, 1.4, 1.6], "crawler.stride_dst_mean": {"values": [0.2, 0.22, 0.24],
                                                                              "zip": "crawler.freq"},
                  "Npoints": [2, 3]})
    assert batch.grid_size == 6
    assert [(p["crawler.freq"], p["crawler.stride_dst_mean"]) for p in batch.points()[::2]] == [
        (1.2, 0.2), (1.4, 0.22), (1.6, 0.24)]


@st.composite
def spaces(draw) -> dict:
    """Random small spaces of dish parameters (plain, zipped and nested axes) and their number of points,
    counted by hand: zipped axes add no factor, a nested value adds its sub-space's points."""
    size = draw(st.integers(1, 3))
    freq = [1.0 + 0.1 * i for i in range(size)]
    sample: dict = {"crawler.freq": freq}
    count = size
    if draw(st.booleans()):
        sample["crawler.stride_dst_mean"] = {"values": [0.2 + 0.01 * i for i in range(size)], "zip": "crawler.freq"}
    if draw(st.booleans()):
        sub = {"decay_coef": [0.1, 0.5][:draw(st.integers(1, 2))]}
        sample["model"] = {"values": ["explorer", "navigator"], "when": {"navigator": sub}}
        count *= 1 + len(sub["decay_coef"])
    if draw(st.booleans()):
        sample["Npoints"] = [2, 3][:draw(st.integers(1, 2))]
        count *= len(sample["Npoints"])
    return sample, count


@settings(max_examples=25, deadline=None)
@given(drawn=spaces())
def test_points_cover_the_space_once_and_size_counts_them(drawn):
    sample, count = drawn
    space = Space.from_sample(sample)
    points = space.points()
    keys = [tuple(sorted(p.items())) for p in points]
    assert len(keys) == len(set(keys)) == space.size() == count
    for p in points:  # a sub-axis appears exactly under its value; zipped partners keep their pairing
        assert ("decay_coef" in p) == (p.get("model") == "navigator")
        if "crawler.stride_dst_mean" in p:
            assert p["crawler.stride_dst_mean"] == pytest.approx(0.2 + (p["crawler.freq"] - 1.0) / 10)


@settings(max_examples=5, deadline=None)
@given(drawn=spaces(), nsims=st.integers(1, 2))
def test_sweeps_of_nested_and_zipped_spaces_complete_every_simulation_exactly_once(tmp_path_factory, drawn, nsims):
    batch = dish(drawn[0], Nsims=nsims)
    assert batch.grid_size == drawn[1] * nsims
    db = tmp_path_factory.mktemp("space") / "s.db"
    summary = run_batch(batch, storage=db, n_jobs=2, chunk_size=2)
    assert summary.complete == batch.grid_size
    study, _ = load_study(open_storage(storage_url(db)), "space")
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    keys = [(t.user_attrs["grid_point"], t.params["replicate"]) for t in done]
    assert sorted(keys) == [(p, r) for p in range(len(batch.points())) for r in range(nsims)]
    for trial in done:
        point = batch.points()[trial.user_attrs["grid_point"]]
        assert {k: v for k, v in trial.params.items() if k != "replicate"} == point
        assert ("grid_id" in trial.system_attrs) == batch.space.is_product


def test_par_df_and_figures_of_a_nested_study(tmp_path):
    batch = dish(NESTED, Nsims=2)
    run_batch(batch, storage=tmp_path / "s.db", n_jobs=2)
    study, _ = load_study(open_storage(storage_url(tmp_path / "s.db")), "space")
    exported = export_study(study, batch, tmp_path / "out")
    par_df, figs = exported.par_df, exported.figures
    assert len(par_df) == batch.grid_size and list(par_df.columns[:3]) == ["model", "decay_coef", "Npoints"]
    assert par_df.loc[par_df["model"] == "explorer", "decay_coef"].isna().all()
    assert set(par_df.loc[par_df["model"] == "navigator", "decay_coef"]) == {0.1, 0.5, 1.0}
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert figs and len(summary[summary["metric"] == "v_mu"]) == 8  # 8 points, explorers' decay_coef empty
    assert summary.loc[summary["metric"] == "v_mu", "n"].eq(2).all()


def test_continuous_axes_are_for_adaptive_samplers(tmp_path):
    batch = dish({"crawler.freq": {"range": [1.0, 1.6]}, "Npoints": {"range": [2, 6]}})
    assert not batch.space.is_grid and batch.space.describe("crawler.freq") == "range [1.0, 1.6]"
    with pytest.raises(SpecError, match=r"sample 'crawler.freq' is a continuous range: a grid sweep needs Ngrid"):
        run_batch(batch, storage=tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()
    run_batch(batch, storage=tmp_path / "s.db", sampler="random", n_trials=4)
    study, _ = load_study(open_storage(storage_url(tmp_path / "s.db")), "space-random")
    for trial in study.trials:
        assert 1.0 <= trial.params["crawler.freq"] <= 1.6 and isinstance(trial.params["Npoints"], int)


@pytest.mark.parametrize("sampler", [optuna.samplers.RandomSampler(seed=1), optuna.samplers.TPESampler(seed=1)])
def test_suggested_points_are_points_of_the_space(sampler):
    space = Space.from_sample({**NESTED, "crawler.freq": {"range": [0.5, 2.0], "log": True},
                               "crawler.stride_dst_mean": {"values": [0.2, 0.3], "zip": "Npoints"}})
    study = optuna.create_study(sampler=sampler)
    grid_part = dict(NESTED)
    grid_points = Space.from_sample({**grid_part, "crawler.stride_dst_mean": {"values": [0.2, 0.3],
                                                                             "zip": "Npoints"}}).points()
    for _ in range(30):
        trial = study.ask()
        point = suggest(space, trial)
        assert 0.5 <= point.pop("crawler.freq") <= 2.0 and point in grid_points
        assert trial.distributions.items() <= fit_distributions(space).items()  # a warm start's copies match
        study.tell(trial, 0.0)


def test_round_trip_keeps_nested_zipped_and_continuous_axes():
    batch = dish({**NESTED, "crawler.freq": {"range": [1.0, 1.6], "log": True},
                  "crawler.stride_dst_mean": {"values": [0.2, 0.3], "zip": "Npoints"}})
    again = Batch.from_dict(batch.to_dict())
    assert again == batch and again.space == batch.space


def test_shipped_nested_batch():
    batch = load_batch("chemotaxis_models")
    assert batch.space.describe("decay_coef") and batch.grid_size == len(batch.points()) * batch.Nsims


@pytest.mark.parametrize("sample, message", [
    ({"Npoints": {"values": [2, 3], "zip": "nope"}}, "sample 'Npoints': zip = 'nope' is not another axis"),
    ({"Npoints": [2, 3], "crawler.freq": {"values": [1.0], "zip": "Npoints"}},
     "sample 'crawler.freq': zipped with 'Npoints' it needs 2 values, got 1"),
    ({"Npoints": [2, 3], "a.freq": {"values": [1.0, 1.1], "zip": "Npoints"},
      "crawler.freq": {"values": [1.0, 1.2], "zip": "a.freq"}}, "which is itself zipped with 'Npoints'"),
    ({"crawler.freq": {"range": [1.0, 2.0]}, "Npoints": {"values": [2, 3], "zip": "crawler.freq"}},
     "cannot zip with the continuous axis 'crawler.freq'"),
    ({"model": {"values": ["explorer"], "when": {"navigator": {"decay_coef": [0.1]}}}},
     "sample 'model': when.navigator is not one of its values ['explorer']"),
    ({"crawler.freq": {"range": [0.0, 2.0], "log": True}}, "a log range needs lo > 0"),
    ({"crawler.freq": {"range": [1.0, 2.0], "zip": "x"}}, "a continuous range takes only log, got 'zip'"),
    ({"crawler.freq": {"values": [1.0], "log": True}}, "log applies to continuous ranges"),
    ({"model": {"values": ["explorer", "navigator"], "when": {"navigator": {"decay_coef": ["high"]}}}},
     "decay_coef takes a number, got 'high'"),
])
def test_space_errors_are_one_line(sample, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        dish(sample)


def test_cli_show_prints_nested_structure_and_rejects_bad_spaces(tmp_path):
    show = subprocess.run([sys.executable, "-m", "larvastudy.cli", "show", "chemotaxis_models"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert show.returncode == 0, show.stderr
    assert "when model = navigator" in show.stdout and "points x" in show.stdout
    toml = tmp_path / "bad.toml"
    toml.write_text('experiment = "dish"\n[sample]\nNpoints = { values = [2, 3], zip = "model" }\n')
    bad = subprocess.run([sys.executable, "-m", "larvastudy.cli", "run", str(toml)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "zip = 'model' is not another axis" in bad.stderr
    assert not (tmp_path / "storage").exists()


def test_report_of_a_nested_study_has_importances_of_the_shared_axes(tmp_path):
    batch = dish(NESTED, Nsims=2)
    run_batch(batch, storage=tmp_path / "s.db", n_jobs=2)
    study, _ = load_study(open_storage(storage_url(tmp_path / "s.db")), "space")
    table = importances(study, batch)
    assert set(table["parameter"]) == {"model", "Npoints"}
    report = write_report(study, batch, tmp_path / "report.html")
    assert "decay_coef" in report.read_text()
