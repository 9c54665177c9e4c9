"""The Batch page's Python examples, with only the import changed and shorter durations / fewer runs."""

from __future__ import annotations

import pandas as pd
import pytest

from larvastudy.api import BatchRun
from larvastudy.errors import ConflictError, SpecError


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LARVASTUDY_STORAGE", raising=False)


def test_quick_start_with_a_registry_entry(tmp_path):
    # What reg.conf.Batch.getID("PItest_off") holds (spec §9.1), plus a short duration as a constant.
    batch_conf = {"exp": "PItest_off", "exp_kws": {"enrichment": {"proc_keys": ["PI"]}},
                  "space_search": {"gain_dict.CS": [[-100.0, 100.0], 4], "gain_dict.UCS": [[-100.0, 100.0], 4],
                                   "duration": 0.1},
                  "optimization": {"fit_par": None, "minimize": True, "absolute": False, "threshold": 0.001,
                                   "max_Nsims": 5, "operator": "mean"}}
    batch = BatchRun(experiment="PItest_off", **batch_conf)
    par_df, figs = batch.simulate(n_jobs=2)
    assert len(par_df) == 16 and {"CS", "UCS", "PI", "PI2", "v_mu"} <= set(par_df.columns)
    assert "PI_heatmap" in figs
    batch.store()
    print(f"Saved to: {batch.dir}")
    par_df.to_csv(f"{batch.dir}/parameter_sweep.csv", index=False)
    assert batch.study_name.startswith("PItest_off-")  # not the shipped PItest_off: its own study
    assert batch.dir == tmp_path / "storage" / batch.study_name
    assert (batch.dir / "par_df.csv").exists() and (batch.dir / "figures" / "PI_heatmap.png").exists()
    assert (tmp_path / "storage" / "larvastudy.db").exists()
    again = BatchRun(experiment="PItest_off", **batch_conf)
    rerun, _ = again.simulate(n_jobs=2)
    assert again.summary.already_finished
    pd.testing.assert_frame_equal(rerun.drop(columns="duration_s"), par_df.drop(columns="duration_s"))


def test_sensitivity_analysis():
    batch = BatchRun(
        experiment="PItest_off",
        sample={"odor_layers[0].intensity": [0.5, 2.0, 8.0]},
        fixed={"duration": 0.1},
        Nsims=2,
    )
    par_df, _figs = batch.simulate()
    # sns.lineplot(data=par_df, x='intensity', y='v_mu')  (seaborn is not a dependency)
    assert par_df.groupby("intensity")["v_mu"].count().tolist() == [2, 2, 2]


def test_robustness_testing():
    batch = BatchRun(
        experiment="dish",
        sample={
            "Npoints": [5, 10, 15, 20, 25, 30]
        },
        fixed={"duration": 0.1, "model": "explorer"},
        Nsims=3
    )

    par_df, _figs = batch.simulate()

    # Check variance
    print(par_df.groupby('Npoints')['v_mu'].agg(['mean', 'std']))
    assert par_df.groupby("Npoints")["v_mu"].agg(["mean", "std"]).notna().all().all()


def test_comparative_study():
    batch = BatchRun(
        experiment="chemotaxis",
        sample={
            "model": ["explorer", "navigator", "forager"],
            "env_params.odorscape.odor_layers[0].intensity": [0.5, 1.0, 2.0]
        },
        fixed={"Npoints": 5, "duration": 0.1},
        Nsims=2
    )

    par_df, _figs = batch.simulate(n_jobs=2)

    # Compare models
    for model in ["explorer", "navigator", "forager"]:
        subset = par_df[par_df['model'] == model]
        print(f"{model}: v_mu = {subset['v_mu'].mean():.2f} mm/s")
        assert len(subset) == 6 and 0 < subset["v_mu"].mean() < 10, model  # mm/s: a larva's crawling speed
    assert len(par_df) == 18


def test_a_changed_definition_under_the_same_name_is_refused():
    BatchRun(experiment="dish", sample={"Npoints": [2]}, fixed={"duration": 0.05}).simulate()
    changed = BatchRun(experiment="dish", sample={"Npoints": [3]}, fixed={"duration": 0.05})
    first = BatchRun(experiment="dish", sample={"Npoints": [2]}, fixed={"duration": 0.05})
    assert changed.study_name != first.study_name  # each definition its own study
    taken = BatchRun(experiment="dish", sample={"Npoints": [3]}, fixed={"duration": 0.05}, study_name=first.study_name)
    with pytest.raises(ConflictError, match=r"holds another definition: sample Npoints: \[2\] -> \[3\]; .*study_name=.*"
                                        r"replace=True\)$") as refused:
        taken.simulate()
    assert "--" not in str(refused.value)  # no command-line flags for Python callers
    renamed = BatchRun(experiment="dish", sample={"Npoints": [3]}, fixed={"duration": 0.05}, study_name="dish-3")
    assert len(renamed.simulate()[0]) == 1
    with pytest.raises(SpecError, match="unknown parameter 'Npoint'"):
        BatchRun(experiment="dish", sample={"Npoint": [3]})


def test_top_level_exports_are_the_documented_api():
    import larvastudy
    from larvastudy.api import BatchRun as api_batch_run

    assert larvastudy.BatchRun is api_batch_run
    assert callable(larvastudy.simulate) and callable(larvastudy.run_batch)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = larvastudy.nope


def test_the_seeds_quick_start_runs_verbatim_with_only_the_import_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from larvastudy import BatchRun, reg  # was: from larvaworld.lib import reg; from larvaworld.lib.sim import BatchRun

    # Load preconfigured Batch settings from registry
    batch_conf = reg.conf.Batch.getID("PItest_off")

    # Launch batch run (parameter sweep defined in Batch configuration)
    batch = BatchRun(experiment="PItest_off", **batch_conf)
    par_df, figs = batch.simulate(n_jobs=4)

    assert len(par_df) == 16 and par_df["PI"].notna().all() and "PI_heatmap" in figs
    assert reg.conf.Batch.getIDs() == ["PItest_off", "patchy_food", "food_grid", "growth", "tactile_detection",
                                       "anemotaxis", "chemotaxis", "chemorbit", "PItrain_mini", "PItrain"]
    batch_conf["space_search"].clear()  # a copy: the registry is unchanged
    assert reg.conf.Batch.getID("PItest_off")["space_search"]


@pytest.mark.parametrize("experiment, sample", [("chemotaxis", {"Odor.mean": [1.0, 2.0]}),
                                                ("patchy_food", {"freq": [1.5, 2.5]})])
def test_larvaworld_registry_names_run(tmp_path, monkeypatch, experiment, sample):
    monkeypatch.chdir(tmp_path)
    par_df, _ = BatchRun(experiment=experiment, sample=sample, fixed={"duration": 0.1}).simulate()
    assert list(par_df[next(iter(sample))]) == next(iter(sample.values())) and (par_df["state"] == "COMPLETE").all()
