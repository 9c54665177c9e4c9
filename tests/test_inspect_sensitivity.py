"""Importances and main effects on a real engine sweep; pairwise comparisons on known data."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from larvastudy.api import run_batch
from larvastudy.definition.batch import Batch
from larvastudy.errors import SpecError
from larvastudy.export import build_par_df
from larvastudy.inspect.sensitivity import categorical_axes, comparison_figure, comparisons, importances, main_effects
from larvastudy.study import load_study, open_storage, storage_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: PItest_off with the CS gain, which steers PI, against EEB_decay, which the model never reads
DRIVEN = Batch(name="driven", experiment="PItest_off", Nsims=2, metrics=("PI", "v_mu"), fixed={"duration": 0.5},
               sample={"gain_dict.CS": [-100.0, 0.0, 100.0], "EEB_decay": [0.5, 1.0, 2.0]})
MODELS = Batch(name="models", experiment="chemotaxis", Nsims=3, metrics=("v_mu",),
               sample={"model": ["explorer", "navigator"], "env_params.odorscape.odor_layers[0].intensity": [0.5, 1.0]})


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[optuna.Study, pd.DataFrame]:
    url = storage_url(tmp_path_factory.mktemp("driven") / "s.db")
    run_batch(DRIVEN, storage=url, n_jobs=1)
    study, _ = load_study(open_storage(url), DRIVEN.name)
    return study, build_par_df(study, DRIVEN)


def test_importance_ranks_the_driving_gain_above_an_inert_parameter(swept) -> None:
    study, _ = swept
    table = importances(study, DRIVEN)
    pi = table[table["metric"] == "PI"].set_index("parameter")["importance"]
    assert list(pi.index) == ["CS", "EEB_decay"] and pi["CS"] > 0.8 > 0.2 > pi["EEB_decay"]
    assert table.groupby("metric")["importance"].sum().to_numpy() == pytest.approx([1.0, 1.0])
    assert "replicate" not in set(table["parameter"])


def test_unknown_or_unavailable_evaluator_is_a_spec_error(swept) -> None:
    with pytest.raises(SpecError, match="unknown evaluator 'shap'"):
        importances(swept[0], DRIVEN, "shap")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="fanova evaluator needs scikit-learn"):
            importances(swept[0], DRIVEN, "fanova")


def test_main_effects_marginalise_over_the_other_axis(swept) -> None:
    _, par_df = swept
    effects = main_effects(par_df, DRIVEN).set_index(["parameter", "level", "metric"])
    runs = par_df.loc[par_df["CS"] == 100.0, "PI"]
    row = effects.loc[("CS", 100.0, "PI")]
    assert (row["n"], row["mean"], row["std"]) == pytest.approx((6, runs.mean(), runs.std()))
    assert effects.loc[("CS", 100.0, "PI"), "mean"] > effects.loc[("CS", -100.0, "PI"), "mean"]
    assert set(effects.index.get_level_values("parameter")) == {"CS", "EEB_decay"}


def known_models() -> pd.DataFrame:
    """v_mu at intensity 0.5: explorer 1, 2, 3 and navigator 3, 4, 5; at 1.0 both 2, 2, 2."""
    values = {("explorer", 0.5): [1.0, 2.0, 3.0], ("navigator", 0.5): [3.0, 4.0, 5.0],
              ("explorer", 1.0): [2.0, 2.0, 2.0], ("navigator", 1.0): [2.0, 2.0, 2.0]}
    return pd.DataFrame([{"model": m, "intensity": i, "replicate": r, "v_mu": v, "state": "COMPLETE"}
                         for (m, i), vs in values.items() for r, v in enumerate(vs)])


def test_pairwise_comparisons_by_hand() -> None:
    assert categorical_axes(MODELS) == ["model"]
    table = comparisons(known_models(), MODELS, "model").set_index("condition")
    row = table.loc["intensity=0.5"]
    assert (row["a"], row["b"], row["n_a"], row["n_b"]) == ("explorer", "navigator", 3, 3)
    assert (row["difference"], row["cohens_d"]) == pytest.approx((2.0, 2.0))  # pooled SD 1
    # Welch: t = 2 / sqrt(1/3 + 1/3) = 2.449 on 4 df, two-sided p = 0.0704
    assert row["p_value"] == pytest.approx(0.07048, abs=1e-4)
    same = table.loc["intensity=1"]
    assert same["difference"] == 0 and math.isnan(same["cohens_d"]) and math.isnan(same["p_value"])


def test_grouped_box_plot_has_a_box_per_level_and_condition() -> None:
    fig = comparison_figure(known_models(), MODELS, "model", "v_mu")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["intensity=0.5", "intensity=1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["explorer", "navigator"]
    assert len(ax.patches) == 4
