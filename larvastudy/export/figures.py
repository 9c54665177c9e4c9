"""Figures of a Batch's par_df: sensitivity lines, heatmaps, box plots and larvaworld's PI heatmap.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state, never shown); saving
them renders with Agg. Only sampled parameters with more than one value count as axes. Their size does
not grow with the grid: large heatmaps lose their per-cell labels and keep a few round tick values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import color_sequences, colormaps
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from larvastudy.engine.metrics import unit
from larvastudy.export.par_df import completed, mean_table, pi_table, summary_df

#: Preference indices, in [-1, 1]: drawn with a diverging colormap centred at 0.
DIVERGING = ("PI", "PI2")
#: Resolution figures are saved at, and the most pixels on their long side.
FIGURE_DPI = 120
MAX_PIXELS = 3000
#: Heatmaps label each cell's value up to this many rows and columns.
MAX_CELL_LABELS = 15
#: Axes of levels (heatmap rows and columns, box plot categories) label each level up to this many levels,
#: else about :data:`THINNED_TICKS` values.
MAX_TICKS = 15
THINNED_TICKS = 9
#: The most groups a box plot tells apart by colour; an axis with more is pooled.
MAX_GROUPS = len(color_sequences["tab10"])
#: The box plot group of runs without a value for an axis (e.g. one nested under another model).
MISSING = "none"
_FIGSIZE = (6.4, 4.4)


def metric_label(metric: str) -> str:
    """``metric (unit)``, e.g. ``v_mu (mm/s)``; just ``metric`` where it has no unit (PI)."""
    return f"{metric} ({unit(metric)})" if unit(metric) else metric


def make_figures(par_df: pd.DataFrame, batch: Any) -> tuple[dict[str, Figure], dict[str, str]]:
    """Figures keyed by a file-name-safe name, ``<metric>_<kind>``, plus ``PI_heatmap`` for PItest; and
    the figures left out, with why (a metric no completed simulation has would draw an empty figure).

    Kinds: one numeric axis, ``line`` (mean and 95 % CI over replicates, replicates as points);
    two, ``heatmap`` (mean over replicates); more, ``pairwise`` (marginal-mean heatmaps of every pair);
    a categorical axis, ``boxplot`` (a second axis as groups).
    """
    done = completed(par_df)
    figs: dict[str, Figure] = {}
    skipped: dict[str, str] = {}
    if done.empty:
        return figs, skipped
    missing = {metric: f"all NaN: no completed simulation has {metric}"
               for metric in batch.metrics if done[metric].isna().all()}
    pi = pi_table(par_df, batch)
    if pi is not None:
        if "PI" in missing:
            skipped["PI_heatmap"] = missing["PI"]
        else:
            figs["PI_heatmap"] = _pi_heatmap(pi, batch)
    drawer = _drawer(done, varying_axes(batch), batch)
    if drawer is None:
        return figs, skipped
    kind, draw = drawer
    for metric in batch.metrics:
        key = re.sub(r"[^\w.-]+", "_", f"{metric}_{kind}")
        if key in figs or key in skipped:
            continue
        if metric in missing:
            skipped[key] = missing[metric]
        else:
            figs[key] = draw(metric)
    return figs, skipped


def _drawer(done: pd.DataFrame, axes: list[str], batch: Any) -> tuple[str, Callable[[str], Figure]] | None:
    """The figure kind for these axes and its drawing function of a metric."""
    categorical = [col for col in axes if _is_categorical(done[col])]
    if categorical:
        return "boxplot", partial(boxplot, done, categorical[0], axes, batch)
    if len(axes) == 1:
        return "line", partial(_line, done, summary_df(done, batch), axes[0], batch)
    if len(axes) == 2:
        return "heatmap", partial(_heatmap, done, axes, batch)
    if axes:
        return "pairwise", partial(_pairwise, done, axes, batch)
    return None


def varying_axes(batch: Any) -> list[str]:
    """par_df columns of the sampled parameters that take more than one value, in sample order."""
    columns = batch.axis_columns()
    return [columns[axis] for axis in batch.space.varying()]


def _is_categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _levels(values: pd.Series) -> list[Any]:
    """Distinct values: sorted if numeric, else in grid order."""
    return sorted(values.unique()) if not _is_categorical(values) else list(pd.unique(values))


def fmt_value(value: Any) -> str:
    """A grid value for labels: numbers to 4 significant digits."""
    numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    return f"{value:.4g}" if numeric else str(value)


def _new(title: str, figsize: tuple[float, float] = _FIGSIZE) -> Figure:
    """A figure of ``figsize`` inches, shrunk to at most :data:`MAX_PIXELS` on its long side."""
    scale = min(1.0, MAX_PIXELS / FIGURE_DPI / max(figsize))
    fig = Figure(figsize=(figsize[0] * scale, figsize[1] * scale), layout="constrained")
    fig.suptitle(title)
    return fig


def _line(done: pd.DataFrame, summary: pd.DataFrame, col: str, batch: Any, metric: str) -> Figure:
    fig = _new(f"{batch.name}: {metric} vs {col}")
    ax = fig.add_subplot()
    stats = summary[summary["metric"] == metric].sort_values(col)
    ax.plot(done[col], done[metric], ".", color="0.55", alpha=0.6, label="replicates")
    ax.errorbar(stats[col], stats["mean"], capsize=3, marker="o", label="mean ± 95 % CI",
                yerr=[stats["mean"] - stats["ci95_low"], stats["ci95_high"] - stats["mean"]])
    ax.set(xlabel=col, ylabel=metric_label(metric))
    ax.legend(frameon=False)
    return fig


def _heatmap(done: pd.DataFrame, axes: list[str], batch: Any, metric: str) -> Figure:
    table = mean_table(done, axes[0], axes[1], metric)
    fig = _new(f"{batch.name}: {metric}, mean over replicates", _heatmap_size(table))
    _colorbar(fig, _draw_heatmap(fig.add_subplot(), table, metric), metric)
    return fig


def _pi_heatmap(table: pd.DataFrame, batch: Any) -> Figure:
    fig = _new(f"{batch.name}: preference index, mean over replicates", _heatmap_size(table))
    ax = fig.add_subplot()
    image = _draw_heatmap(ax, table, "PI")
    ax.set(xlabel="UCS gain", ylabel="CS gain")
    _colorbar(fig, image, "PI", "PI (+1: all larvae on the CS side)")
    return fig


def _pairwise(done: pd.DataFrame, axes: list[str], batch: Any, metric: str) -> Figure:
    pairs = list(combinations(axes, 2))
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig = _new(f"{batch.name}: {metric}, marginal means", (4.4 * ncols, 3.8 * nrows))
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    tables = [mean_table(done, row, col, metric) for row, col in pairs]
    norm = _norm(metric, np.concatenate([t.to_numpy(float).ravel() for t in tables]))
    for ax, table in zip(grid, tables, strict=False):  # the grid's last row may have more axes than tables
        image = _draw_heatmap(ax, table, metric, norm)
    for ax in grid[len(pairs):]:
        ax.set_axis_off()
    _colorbar(fig, image, metric, ax=grid[:len(pairs)].tolist())
    return fig


def boxplot(done: pd.DataFrame, x: str, axes: list[str], batch: Any, metric: str) -> Figure:
    """Box plots of ``metric`` per ``x`` value, grouped by the first other axis if it has at most
    :data:`MAX_GROUPS` values (any further axes pooled). Runs without a value of ``x`` or of the group
    axis form a group of their own, :data:`MISSING`."""
    others = [col for col in axes if col != x]
    hue = others[0] if others and done[others[0]].nunique(dropna=False) <= MAX_GROUPS else None
    pooled = [col for col in others if col != hue]
    fig = _new(f"{batch.name}: {metric} by {x}" + (f" (pooled over {', '.join(pooled)})" if pooled else ""))
    ax = fig.add_subplot()
    keys = [x, hue] if hue else [x]
    levels = {col: _levels(done[col].dropna()) + ([MISSING] if done[col].isna().any() else []) for col in keys}
    filled = done.assign(**{col: done[col].astype(object).where(done[col].notna(), MISSING) for col in keys})
    runs = {key: values.dropna().to_numpy() for key, values in filled.groupby(keys, sort=False)[metric]}
    cats, groups = levels[x], levels[hue] if hue else [None]
    width = 0.8 / len(groups)
    colors = color_sequences["tab10"]
    for j, group in enumerate(groups):
        data = [runs.get((cat, group) if hue else (cat,), np.empty(0)) for cat in cats]
        positions = np.arange(len(cats)) - 0.4 + width * (j + 0.5)
        boxes = ax.boxplot(data, positions=positions, widths=0.85 * width, patch_artist=True,
                           manage_ticks=False, medianprops={"color": "black"})
        for patch in boxes["boxes"]:
            patch.set(facecolor=colors[j % len(colors)], alpha=0.75)
        for pos, values in zip(positions, data, strict=True):
            ax.plot(np.full(len(values), pos), values, ".", color="0.25", alpha=0.6)
    _set_ticks(ax.xaxis, pd.Index(cats, dtype=object))
    ax.set(xlabel=x, ylabel=metric_label(metric), xlim=(-0.5, len(cats) - 0.5))
    if hue:
        handles = [Patch(facecolor=colors[j % len(colors)], alpha=0.75) for j in range(len(groups))]
        ax.legend(handles, [fmt_value(g) for g in groups], title=hue, frameon=False)
    return fig


def _heatmap_size(table: pd.DataFrame) -> tuple[float, float]:
    """Grows with the cells up to :data:`MAX_CELL_LABELS` per side, the most that get labels."""
    ncols, nrows = (min(max(n, 3), MAX_CELL_LABELS) for n in table.shape[::-1])
    return 2.8 + 0.75 * ncols, 1.6 + 0.6 * nrows


def _norm(metric: str, values: np.ndarray) -> Normalize:
    if metric in DIVERGING:
        return Normalize(-1.0, 1.0)
    finite = values[np.isfinite(values)]
    return Normalize(finite.min(), finite.max()) if finite.size else Normalize()


def _draw_heatmap(ax: Axes, table: pd.DataFrame, metric: str, norm: Normalize | None = None) -> AxesImage:
    """Cells of ``table`` (rows upward), each annotated with its value up to :data:`MAX_CELL_LABELS` per side."""
    values = table.to_numpy(float)
    norm = norm or _norm(metric, values.ravel())
    cmap = colormaps["RdBu_r" if metric in DIVERGING else "viridis"]
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    _set_ticks(ax.xaxis, table.columns)
    _set_ticks(ax.yaxis, table.index)
    ax.set(xlabel=table.columns.name, ylabel=table.index.name)
    if max(values.shape) > MAX_CELL_LABELS:
        return image
    size = max(6.0, 10.0 - 0.4 * max(values.shape))
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            r, g, b, _ = cmap(norm(value))
            color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", color=color, fontsize=size)
    return image


def _set_ticks(axis: Axis, levels: pd.Index) -> None:
    """Ticks at the positions 0, 1, ... of ``levels``: each labelled up to :data:`MAX_TICKS`, else a few round
    values (evenly spaced numbers; others rounded to 2 significant digits) at their place between levels."""
    positions = np.arange(len(levels))
    if len(levels) <= MAX_TICKS:
        axis.set_ticks(positions, [fmt_value(v) for v in levels])
        return
    picks = np.unique(np.linspace(0, len(levels) - 1, THINNED_TICKS).round().astype(int))
    if _is_categorical(pd.Series(levels)) or not levels.is_monotonic_increasing:
        axis.set_ticks(picks, [fmt_value(levels[i]) for i in picks])
        return
    values = np.asarray(levels, float)
    steps = np.diff(values)
    if np.allclose(steps, steps[0]):
        ticks = np.asarray(MaxNLocator(nbins=THINNED_TICKS - 1).tick_values(values[0], values[-1]))
        ticks = np.round(ticks / (ticks[1] - ticks[0])) * (ticks[1] - ticks[0])  # 0, not 1e-17
    else:
        ticks = np.unique([float(f"{v:.2g}") for v in values[picks]])
    ticks = ticks[(ticks >= values.min()) & (ticks <= values.max())]
    axis.set_ticks(np.interp(ticks, values, positions), [fmt_value(t) for t in ticks])


def _colorbar(fig: Figure, image: AxesImage, metric: str, label: str | None = None, **kwargs: Any) -> None:
    fig.colorbar(image, label=label or metric_label(metric), **kwargs)
