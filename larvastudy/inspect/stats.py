"""Statistical power from the observed replicate spread: how many replicates (Nsims) a question needs.

The spread is the replicate standard deviation pooled over grid points (each point's variance
weighted by its degrees of freedom), so it needs grid points with at least two completed replicates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from larvastudy.errors import SpecError
from larvastudy.export.par_df import summary_df

ALPHA = 0.05
#: Replicate counts are searched up to this many per grid point.
MAX_NSIMS = 1_000_000


def pooled_std(summary: pd.DataFrame) -> pd.DataFrame:
    """Per metric (index): ``pooled_std`` over grid points with n >= 2 and its degrees of freedom ``dof``."""
    rows = summary[summary["n"] >= 2]
    dof = rows["n"] - 1
    sums = pd.DataFrame({"ss": dof * rows["std"] ** 2, "dof": dof, "metric": rows["metric"]}).groupby(
        "metric", sort=False).sum()
    return pd.DataFrame({"pooled_std": np.sqrt(sums["ss"] / sums["dof"]), "dof": sums["dof"].astype(int)})


def ci_half_width(std: float, n: int) -> float:
    """Half-width of the 95 % t interval of a mean of ``n`` replicates with standard deviation ``std``."""
    return float(stats.t.ppf(1 - ALPHA / 2, n - 1) * std / math.sqrt(n)) if n >= 2 else math.inf


def t_test_power(std: float, delta: float, n: int) -> float:
    """Power of the two-sided two-sample t test (``n`` replicates each, level 5 %) to detect ``delta``."""
    if n < 2:
        return 0.0
    if std == 0:
        return 1.0
    df, shift = 2 * n - 2, delta / (std * math.sqrt(2 / n))
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    return float(stats.nct.sf(crit, df, shift) + stats.nct.cdf(-crit, df, shift))


def nsims_for_half_width(std: float, half_width: float) -> int:
    """Fewest replicates (>= 2) whose 95 % interval of the mean is at most ± ``half_width``."""
    start = (stats.norm.ppf(1 - ALPHA / 2) * std / half_width) ** 2  # the normal bound is never above
    return _first(lambda n: ci_half_width(std, n) <= half_width, start)


def nsims_for_difference(std: float, delta: float, power: float = 0.8) -> int:
    """Fewest replicates per grid point for a Welch/Student t test between two grid points to detect a
    difference ``delta`` with probability ``power`` (noncentral t, equal spread at both points)."""
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(power)
    return _first(lambda n: t_test_power(std, delta, n) >= power, 2 * (z * std / delta) ** 2 - 1)


def _first(ok: Any, start: float) -> int:
    """The smallest n >= max(2, floor(start)) with ``ok(n)``: gallop up, then bisect."""
    low = max(2, math.floor(start))
    if ok(low):
        return low
    step = 1
    while not ok(low + step):
        low, step = low + step, step * 2
        if low > MAX_NSIMS:
            raise SpecError(f"more than {MAX_NSIMS:,} replicates would be needed; ask for a larger difference")
    high = low + step
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if not ok(mid) else (low, mid)
    return high


def power_table(par_df: pd.DataFrame, batch: Any, metrics: Sequence[str] | None = None,
                delta: float | None = None, half_width: float | None = None, power: float = 0.8) -> pd.DataFrame:
    """Per metric: the pooled replicate spread, the current Nsims and the 95 % CI half-width it gives,
    and, when asked, the Nsims for a CI of ± ``half_width`` and for detecting ``delta`` between two
    grid points with ``power`` (with the power the current Nsims has)."""
    for name, value in (("delta", delta), ("half-width", half_width)):
        if value is not None and not value > 0:
            raise SpecError(f"--{name} must be a positive number, got {value}")
    if not 0 < power < 1:
        raise SpecError(f"--power must lie between 0 and 1, got {power}")
    metrics = list(metrics or batch.metrics)
    unknown = [m for m in metrics if m not in batch.metrics]
    if unknown:
        raise SpecError(f"unknown metric {unknown[0]!r}; this study has {', '.join(batch.metrics)}")
    spread = pooled_std(summary_df(par_df, batch))
    missing = [m for m in metrics if m not in spread.index]
    if missing:
        raise SpecError(f"no grid point has two completed replicates of {missing[0]!r}, so its spread is "
                        f"unknown; run a study with Nsims >= 2 (--nsims 3 --study-name ...)")
    rows = []
    for metric in metrics:
        std = float(spread["pooled_std"][metric])
        row = {"metric": metric, "pooled_std": std, "dof": int(spread["dof"][metric]), "Nsims": batch.Nsims,
               "ci95_half_width": ci_half_width(std, batch.Nsims)}
        if half_width is not None:
            row["Nsims_for_half_width"] = nsims_for_half_width(std, half_width)
        if delta is not None:
            row["power_now"] = t_test_power(std, delta, batch.Nsims)
            row["Nsims_for_delta"] = nsims_for_difference(std, delta, power)
        rows.append(row)
    return pd.DataFrame(rows)
