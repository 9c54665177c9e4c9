"""Replicate statistics, robustness flags and power against hand-computed values on known data."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from larvastudy.definition.batch import Batch
from larvastudy.errors import SpecError
from larvastudy.export import summary_df
from larvastudy.inspect.stats import (
    ci_half_width,
    nsims_for_difference,
    nsims_for_half_width,
    pooled_std,
    power_table,
    t_test_power,
)

DISH = Batch(name="dish", experiment="dish", Nsims=3, metrics=("v_mu", "cum_dst"), sample={"Npoints": [5, 10]})
T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom


def known_par_df() -> pd.DataFrame:
    """Npoints 5: v_mu 1, 2, 3 (mean 2, SD 1); Npoints 10: 9.9, 10, 10.1 (SD 0.1); cum_dst is signed."""
    rows = [{"Npoints": npoints, "replicate": r, "v_mu": v, "cum_dst": c, "state": "COMPLETE"}
            for npoints, vs, cs in ((5, (1.0, 2.0, 3.0), (-1.0, 0.0, 1.0)), (10, (9.9, 10.0, 10.1), (5.0, 5.0, 5.0)))
            for r, (v, c) in enumerate(zip(vs, cs, strict=True))]
    failed = {"Npoints": 10, "replicate": 3, "v_mu": None, "cum_dst": None, "state": "FAIL"}
    return pd.DataFrame([*rows, failed])


def test_summary_statistics_cv_and_flags_by_hand() -> None:
    summary = summary_df(known_par_df(), DISH, max_cv=0.2, max_ci_width={"cum_dst": 1.0})
    row = summary.set_index(["metric", "Npoints"]).loc[("v_mu", 5)]
    half = T_975_2 * 1 / math.sqrt(3)
    assert (row["n"], row["mean"], row["std"], row["sem"]) == pytest.approx((3, 2.0, 1.0, 1 / math.sqrt(3)))
    assert (row["ci95_low"], row["ci95_high"], row["ci95_width"]) == pytest.approx((2 - half, 2 + half, 2 * half))
    assert row["cv"] == pytest.approx(0.5)
    flags = summary.set_index(["metric", "Npoints"])["unstable"].to_dict()
    # v_mu: CV 0.5 > 0.2 at 5 points, 0.01 at 10; cum_dst: signed (no CV), CI width 4.97 > 1 at 5, 0 at 10
    assert flags == {("v_mu", 5): True, ("v_mu", 10): False, ("cum_dst", 5): True, ("cum_dst", 10): False}
    assert summary.loc[summary["metric"] == "cum_dst", "cv"].isna().all()
    assert summary.set_index(["metric", "Npoints"]).loc[("v_mu", 10), "cv"] == pytest.approx(0.01)


def test_a_single_replicate_is_never_flagged() -> None:
    one = known_par_df().query("replicate == 0")
    summary = summary_df(one, DISH, max_cv=0.0, max_ci_width=0.0)
    assert not summary["unstable"].any() and summary["std"].isna().all()


def test_pooled_std_weights_points_by_degrees_of_freedom() -> None:
    spread = pooled_std(summary_df(known_par_df(), DISH))
    assert spread.loc["v_mu", "pooled_std"] == pytest.approx(math.sqrt((2 * 1.0 + 2 * 0.01) / 4))
    assert spread.loc["v_mu", "dof"] == 4


def test_sample_sizes_match_textbook_values() -> None:
    # t interval: n = 18 is the first with t(0.975, n-1) / sqrt(n) <= 0.5 (2.110 / 4.243 = 0.497)
    assert nsims_for_half_width(1.0, 0.5) == 18 and ci_half_width(1.0, 17) > 0.5 >= ci_half_width(1.0, 18)
    # two-sample t test, d = 1, 80 % power: 17 per group (power 0.807; G*Power), d = 0.5 at 90 %: 86
    assert nsims_for_difference(1.0, 1.0) == 17 and t_test_power(1.0, 1.0, 17) == pytest.approx(0.807, abs=1e-3)
    assert t_test_power(1.0, 1.0, 16) < 0.8
    assert nsims_for_difference(2.0, 1.0, power=0.9) == 86
    assert nsims_for_difference(1.0, 0.1) == 1571
    assert nsims_for_half_width(0.0, 0.1) == 2


def test_power_table_from_observed_spread() -> None:
    table = power_table(known_par_df(), DISH, ["v_mu"], delta=1.0, half_width=0.5).iloc[0]
    std = math.sqrt(0.505)
    assert table["pooled_std"] == pytest.approx(std)
    assert table["ci95_half_width"] == pytest.approx(T_975_2 * std / math.sqrt(3))
    assert table["Nsims_for_half_width"] == nsims_for_half_width(std, 0.5)
    assert table["Nsims_for_delta"] == nsims_for_difference(std, 1.0)
    assert table["power_now"] == pytest.approx(t_test_power(std, 1.0, 3))


@pytest.mark.parametrize("kwargs, message", [
    ({"delta": 0.0}, "--delta must be a positive number"),
    ({"half_width": -1.0}, "--half-width must be a positive number"),
    ({"power": 1.0}, "--power must lie between 0 and 1"),
    ({"metrics": ["PI"]}, "unknown metric 'PI'"),
])
def test_power_table_rejects_bad_requests(kwargs, message) -> None:
    with pytest.raises(SpecError, match=message):
        power_table(known_par_df(), DISH, **kwargs)


def test_power_needs_replicates() -> None:
    with pytest.raises(SpecError, match="no grid point has two completed replicates"):
        power_table(known_par_df().query("replicate == 0"), DISH)
