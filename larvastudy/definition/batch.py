"""Batch definitions (larvaworld's Batch mode): an experiment, grid axes, fixed overrides, replicates.

A :class:`Batch` is validated completely when it is built, before anything runs or any storage is
touched: every problem is a :class:`~larvastudy.errors.SpecError` with one line naming the bad value.
Batches come from TOML files (:func:`load_batch`, the shipped ones in ``larvastudy/studies/``) or
from keyword arguments as larvaworld's ``BatchRun`` takes them (:func:`batch_from_kwargs`).

Axes (``sample``) are described in :mod:`larvastudy.definition.space`: grid axes (a list of values,
``{values = [...]}``, ``{range = [lo, hi], Ngrid = n}`` or larvaworld's ``[[lo, hi], n]``), continuous
ranges for adaptive samplers, zipped and nested axes. Range values stay ints when both ends are ints
and every grid value is whole; otherwise they are floats (larvaworld truncates
``linspace(-100, 100, 4)`` to ``-33``/``33``, which silently moves grid points).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from functools import cached_property
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from larvastudy.definition import paths
from larvastudy.definition.objective import DISTANCE, Target, parse_targets, targets_to_dict
from larvastudy.definition.presets import Tree, experiment_tree
from larvastudy.definition.space import Space, is_int, is_number, plain
from larvastudy.engine import CORRECTED, LARVAWORLD, canonical, check_config, tree_metrics
from larvastudy.errors import InertParameterWarning, SpecError
from larvastudy.machine import gigabytes, physical_memory
from larvastudy.names import check_name

#: Sweeps larger than this many simulations need ``allow_large=True`` (the CLI's ``--yes``).
MAX_SIMULATIONS = 100_000
#: Peak memory of a sweep per simulation, run and export included (bench/results/scale.txt, rounded up):
#: a grid that would need more than the machine has is refused however it is confirmed.
BYTES_PER_SIMULATION = 4_000
#: Seeds are numpy's legacy 32-bit seeds (``numpy.random.RandomState``, GridSampler's shuffle).
MAX_SEED = 2**32 - 1
#: Parameters that exist (larvaworld declares them) but that no result depends on, here as upstream.
_INERT = {
    r"\.EEB_decay$": "is declared but never read by the model (in larvaworld 2.5.1 too): it changes nothing",
    r"\.source_units\.[^.]+\.radius$": "only sets how a source is drawn (in larvaworld 2.5.1 too): it changes nothing",
    r"\.olfactor\.input_noise$": "is declared but never applied: larvaworld 2.5.1 adds sensor noise only to Python "
                                 "scalars, never to the numpy concentrations its olfactor senses (spec §4.2, §10.7), "
                                 "and the engine does not model it: it changes nothing",
    r"\.odor_layers\[\d+\]\.intensity$": "cancels out under log perception, the olfactor's only mode (in larvaworld "
                                          "2.5.1 too): results differ only by rounding, amplified over a run",
}
#: The parameter choosing the model: larvaworld 2.5.1's as it runs (the default) or "corrected" (docs/model.md).
FIDELITY = "fidelity"
#: The trial parameter that numbers the replicates of a grid point.
REPLICATE = "replicate"
#: Names the exporter's table gives columns of its own; axis columns never shorten to them.
RESERVED_COLUMNS = frozenset({REPLICATE, "seed", "grid_point", "error"})

_TOML_KEYS = ("name", "description", "experiment", "Nsims", "metrics", "seed", "sample", "fixed", "optimization",
              "targets")
_OPTIMIZATION_KEYS = ("fit_par", "minimize", "absolute", "operator", "threshold", "max_Nsims", "operations")
_LARVAWORLD_KEYS = ("exp", "exp_kws", "space_search", "id")
#: larvaworld ``BatchRun`` arguments that larvastudy takes under another name, or not at all, and why.
_LARVAWORLD_RENAMED = {
    "N": "the replicates per grid point are Nsims here (larvaworld's N)",
    "iterations": "the replicates per grid point are Nsims here (agentpy's iterations)",
    "store_data": "larvastudy always stores every simulation (in its Optuna study); drop store_data",
    "dir": "the output folder is outdir here (larvaworld's dir)",
    "space_kws": "larvastudy builds the grid from space_search alone; drop space_kws",
}
_OPERATORS = ("mean", "std")


@dataclass(frozen=True)
class Optimization:
    """larvaworld's ``OptimizationOps``: which metric is the objective and how it is reduced.

    ``threshold``: a run stops once a point's objective reaches it (at or below when minimising,
    at or above when maximising). ``max_Nsims``: an adaptive fit's default number of trials.
    """

    fit_par: str | None = None
    minimize: bool = True
    absolute: bool = False
    operator: str = "mean"
    threshold: float | None = None
    max_Nsims: int | None = None

    def __post_init__(self) -> None:
        if self.fit_par is not None and not isinstance(self.fit_par, str):
            raise SpecError(f"optimization fit_par must be a metric name, got {self.fit_par!r}")
        for name in ("minimize", "absolute"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"optimization {name} must be true or false, got {getattr(self, name)!r}")
        if self.operator not in _OPERATORS:
            raise SpecError(f"optimization operator must be one of {', '.join(_OPERATORS)}, got {self.operator!r}")
        if self.threshold is not None and not is_number(self.threshold):
            raise SpecError(f"optimization threshold must be a number, got {self.threshold!r}")
        if self.max_Nsims is not None and not (is_int(self.max_Nsims) and self.max_Nsims >= 1):
            raise SpecError(f"optimization max_Nsims must be a whole number >= 1, got {self.max_Nsims!r}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Optimization:
        """From a TOML table or a larvaworld dict (older ``operations = {mean, std, abs}`` included)."""
        _check_keys("optimization", raw, _OPTIMIZATION_KEYS)
        kwargs = {k: v for k, v in raw.items() if k != "operations"}
        ops = raw.get("operations")
        if ops is not None:
            _check_keys("optimization operations", ops, ("mean", "std", "abs"))
            kwargs.setdefault("absolute", bool(ops.get("abs", False)))
            kwargs.setdefault("operator", "std" if ops.get("std") else "mean")
        return cls(**kwargs)


@dataclass(frozen=True)
class Batch:
    """A validated parameter sweep: the points of ``sample`` (see :mod:`larvastudy.definition.space`) × ``Nsims``
    replicates, or, with a continuous axis, the space an adaptive sampler searches.

    ``check=False`` skips compiling the experiment at every axis value and checking the name (see
    :mod:`larvastudy.names`): for a definition that was checked when its study was made (:meth:`from_dict`
    of a stored one, which an older larvastudy may have named otherwise)."""

    name: str
    experiment: str
    sample: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)
    Nsims: int = 1
    metrics: tuple[str, ...] = ()
    optimization: Optimization | None = None
    seed: int = 0
    description: str = ""
    targets: Mapping[str, Target] = field(default_factory=dict)
    space: Space = field(init=False, repr=False, compare=False)
    check: InitVar[bool] = True

    def __post_init__(self, check: bool) -> None:
        if check:
            check_name(self.name, "Batch name")  # the default study name: a folder and table names
        elif not isinstance(self.name, str) or not self.name:
            raise SpecError(f"the Batch name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.description, str):
            raise SpecError(f"description must be a string, got {self.description!r}")
        if not isinstance(self.experiment, str):
            raise SpecError(f"experiment must be an experiment name, got {self.experiment!r}")
        experiment_tree(self.experiment)
        if not (is_int(self.Nsims) and self.Nsims >= 1):
            raise SpecError(f"Nsims must be a whole number >= 1, got {self.Nsims!r}")
        if not (is_int(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise SpecError(f"seed must be a whole number from 0 to 2**32 - 1, got {self.seed!r}")
        if not isinstance(self.sample, Mapping) or not isinstance(self.fixed, Mapping):
            raise SpecError("sample and fixed must be tables of parameter: value")
        if isinstance(self.metrics, str) or not all(isinstance(m, str) for m in self.metrics):
            raise SpecError(f"metrics must be a list of metric names, e.g. [\"v_mu\"], got {self.metrics!r}")
        for name, value in self.fixed.items():
            _check_finite(f"fixed {name!r}", value)
        optimization = self.optimization
        if isinstance(optimization, Mapping):
            optimization = Optimization.from_dict(optimization)
        elif optimization is not None and not isinstance(optimization, Optimization):
            raise SpecError(f"optimization must be a table, got {optimization!r}")
        set_ = object.__setattr__  # frozen: normalise once, at construction
        set_(self, "optimization", optimization)
        set_(self, "space", Space.from_sample(self.sample))
        self._check_feasible()
        set_(self, "sample", self.space.to_sample())
        fixed = copy.deepcopy({str(k): plain(v) for k, v in self.fixed.items()})
        if FIDELITY not in self.space.parameters():  # part of every definition: a study knows which model ran it
            fixed.setdefault(FIDELITY, LARVAWORLD)
        set_(self, "fixed", fixed)
        set_(self, "metrics", self._checked_metrics())
        set_(self, "targets", parse_targets(self.targets, self._allowed_metrics()))
        for metric in (self.objective_metric(), *self.targets):
            if metric not in self.metrics:
                set_(self, "metrics", (*self.metrics, metric))
        if check:
            self._check_parameters()

    # -- the grid ---------------------------------------------------------------------------------

    def base_tree(self) -> Tree:
        """The experiment's tree with ``fixed`` applied and the metrics to compute.

        A SpecError if a fixed parameter exists only in a sampled model (then use :meth:`config`).
        """
        return self._tree({})

    def points(self) -> list[dict[str, Any]]:
        """The grid points in a stable order (see :meth:`Space.points`); a SpecError for a continuous space."""
        return [dict(p) for p in self._points]

    def parameters(self) -> list[str]:
        """Every parameter a point may set: the axes, each followed by its sub-axes."""
        return self.space.parameters()

    def config(self, point: Mapping[str, Any]) -> Tree:
        """The resolved experiment tree of one grid point."""
        return self._tree(point)

    @property
    def grid_size(self) -> int:
        """Simulations in the sweep: grid points × ``Nsims`` (a SpecError for a continuous space)."""
        self.space.require_grid()
        return self.space.size() * self.Nsims

    def check_size(self, allow_large: bool = False) -> None:
        """Refuse sweeps above :data:`MAX_SIMULATIONS` unless ``allow_large``."""
        if self.grid_size > MAX_SIMULATIONS and not allow_large:
            raise SpecError(f"Batch {self.name!r} has {self.grid_size:,} simulations, more than {MAX_SIMULATIONS:,} "
                            f"(about {gigabytes(self.grid_size * BYTES_PER_SIMULATION)} of memory); confirm with "
                            "--yes (allow_large=True) or shrink the grid")

    def _check_feasible(self) -> None:
        """Refuse a grid this machine has too little memory for, before anything is allocated for it."""
        memory = physical_memory()
        if not self.space.is_grid or memory is None:
            return
        points = self.space.size()
        need = points * self.Nsims * BYTES_PER_SIMULATION
        if need > memory:
            raise SpecError(f"Batch {self.name!r} has {points:,} grid points x {self.Nsims:,} replicates = "
                            f"{points * self.Nsims:,} simulations, needing about {gigabytes(need)} of memory; this "
                            f"machine has {gigabytes(memory)}: shrink the grid or split it into several Batches")

    # -- naming and the objective -----------------------------------------------------------------

    def axis_columns(self) -> dict[str, str]:
        """Each axis's column name: its last dotted part when that is unambiguous, else the axis (and always
        for larvaworld's registry names, such as ``Odor.mean``, whose parts mean nothing alone)."""
        taken = set(RESERVED_COLUMNS) | set(self.metrics) | {f"{m}_std" for m in self.metrics}
        params = self.parameters()
        tree = self._experiment_tree
        shorts = {axis: axis if paths.larvaworld_name(tree, axis) != axis else axis.rsplit(".", 1)[-1]
                  for axis in params}
        names = [*params, *(short for axis, short in shorts.items() if short != axis)]
        return {axis: short if short == axis or (names.count(short) == 1 and short not in taken) else axis
                for axis, short in shorts.items()}

    def objective_metric(self) -> str:
        """``optimization.fit_par`` (canonical name) if set, else PI for PItest_*, else the first metric."""
        if self.optimization is not None and self.optimization.fit_par is not None:
            return canonical(self.optimization.fit_par)
        if self.experiment.startswith("PItest"):
            return "PI"
        return self.metrics[0]

    def objective_name(self) -> str:
        """The objective's name: ``target_distance`` with targets, else :meth:`objective_metric`."""
        return DISTANCE if self.targets else self.objective_metric()

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        """'minimize' or 'maximize': minimise a target distance, ``optimization.minimize`` for a fit_par,
        PI is maximised."""
        if self.targets:
            return "minimize"
        opt = self.optimization
        if opt is not None and opt.fit_par is not None:
            return "minimize" if opt.minimize else "maximize"
        return "maximize" if self.objective_metric() in ("PI", "PI2") else "minimize"

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able definition; ``Batch.from_dict`` rebuilds an equal Batch."""
        return {
            "name": self.name,
            "description": self.description,
            "experiment": self.experiment,
            "sample": copy.deepcopy(self.sample),
            "fixed": copy.deepcopy(self.fixed),
            "Nsims": self.Nsims,
            "metrics": list(self.metrics),
            "optimization": dataclasses.asdict(self.optimization) if self.optimization else None,
            "seed": self.seed,
            "targets": targets_to_dict(self.targets),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], check: bool = True) -> Batch:
        """The inverse of :meth:`to_dict` (``check``: see the class)."""
        kwargs: dict[str, Any] = {k: tuple(v) if k == "metrics" else v for k, v in data.items()}
        return cls(**kwargs, check=check)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Batch:
        """A study's definition as this or an earlier larvastudy stored it (not checked again): one stored before
        ``fidelity`` existed ran the corrected model, and keeps running it."""
        fixed, sample = data.get("fixed") or {}, data.get("sample") or {}
        if FIDELITY not in fixed and FIDELITY not in sample:
            data = {**data, "fixed": {**fixed, FIDELITY: CORRECTED}}
        return cls.from_dict(data, check=False)

    # -- internals --------------------------------------------------------------------------------

    @cached_property
    def _experiment_tree(self) -> Tree:
        tree = experiment_tree(self.experiment)
        tree["metrics"] = list(self.metrics)
        return tree

    @cached_property
    def _points(self) -> list[dict[str, Any]]:
        return self.space.points()

    def _tree(self, point: Mapping[str, Any]) -> Tree:
        # Fixed and sampled overrides go in together so that model replacements apply first.
        return paths.apply_overrides(self._experiment_tree, {**self.fixed, **point})

    def _checked_metrics(self) -> tuple[str, ...]:
        """The metrics to compute (canonical names; the experiment's own list by default)."""
        wanted = list(self.metrics) if self.metrics else list(experiment_tree(self.experiment)["metrics"])
        fit_par = self.optimization.fit_par if self.optimization else None
        allowed = self._allowed_metrics()
        for what, name in [*(("metric", m) for m in wanted), ("optimization fit_par", fit_par)]:
            if name is not None and (not isinstance(name, str) or canonical(name) not in allowed):
                raise SpecError(f"unknown {what} {name!r} for experiment {self.experiment!r}; "
                                f"available: {', '.join(allowed)}")
        return tuple(dict.fromkeys(canonical(m) for m in wanted))

    def _allowed_metrics(self) -> list[str]:
        return tree_metrics(experiment_tree(self.experiment))

    def _check_parameters(self) -> None:
        """Resolve every override and compile a config for every axis value (both ends of a range), so
        errors surface now.

        Each value is checked with the other axes at their first value and its own sub-axes in place
        (so a sampled ``model`` is there); combinations that only fail together fail their own trials.
        """
        if REPLICATE in self.space.parameters():
            raise SpecError(f"{REPLICATE!r} is reserved for the replicate number; use Nsims")
        both = sorted(set(self.space.parameters()) & set(self.fixed))
        if both:
            raise SpecError(f"{both[0]!r} is both sampled and fixed; keep it in one of them")
        checked: list[dict[str, Any]] = []
        inert: dict[str, str] = {}
        for point in self.space.covering_points():
            if point in checked:
                continue
            checked.append(point)
            changed = {k: v for k, v in point.items() if checked[0].get(k) != v}
            where = ", ".join(f"sample {k!r} value {v!r}" for k, v in changed.items())
            context = _compile(where, self._experiment_tree, {**self.fixed, **point})
            owners: dict[str, str] = {}
            for name in [*self.fixed, *point]:
                for path in paths.resolve(context, name):
                    if owners.setdefault(path, name) != name:
                        raise SpecError(f"{owners[path]!r} and {name!r} set the same parameter {path}")
                    _check_effect(context, name, path, inert)
        for name, why in inert.items():
            warnings.warn(InertParameterWarning(f"{name!r} {why}"), stacklevel=4)


def _check_effect(tree: Tree, name: str, path: str, inert: dict[str, str]) -> None:
    """A SpecError if parameter ``name`` (at ``path``) is set where it cannot act: a gain for an odor that no
    layer of the arena emits. Parameters that are inert in larvaworld too are noted in ``inert``, with why."""
    odor_ids = [str(layer["id"]) for layer in tree["env_params"]["odorscape"]["odor_layers"]]
    gain = re.search(r"\.gain_dict\.([^.]+)$", path)
    if gain and gain.group(1) not in odor_ids:
        raise SpecError(f"{name!r}: no odor {gain.group(1)!r} in this arena, so its gain would change nothing; "
                        f"odor ids: {', '.join(odor_ids) or 'none'}")
    for pattern, why in _INERT.items():
        if re.search(pattern, path):
            inert.setdefault(name, why)
    if path.endswith(".memory.Delta"):
        inert.setdefault(name, "bins the odor change into memory states, of which there is one while "
                               "memory.state_spacePerSide = 0, the only value the engine runs (larvaworld's default): "
                               "it changes nothing")
    if ".brain.windsensor." in path and tree.get(FIDELITY) == LARVAWORLD:
        inert.setdefault(name, "acts on nothing in larvaworld 2.5.1, whose explorer has no windsensor (nor would its "
                               "default brain read the weights); fidelity = 'corrected' runs the windsensor "
                               "(docs/model.md, deviations 16 and 18)")
    if (re.search(r"\.toucher\.(initial_gain|decay_coef)$", path)
            and not paths.get(tree, path.rpartition(".")[0] + ".touch_sensors")):
        inert.setdefault(name, "acts through touch sensors, which this toucher does not mount (touch_sensors = [], as "
                               "larvaworld 2.5.1's toucher preset): it changes nothing")
    if (path.endswith(".physics.ang_vel_coef")
            and paths.get(tree, path.replace("ang_vel_coef", "ang_mode")) != "velocity"):
        inert.setdefault(name, "only acts when physics.ang_mode = 'velocity' (in larvaworld 2.5.1 too): it changes "
                               "nothing here")


def _check_finite(where: str, value: Any) -> None:
    """A SpecError if ``value`` holds an infinite or NaN number anywhere (TOML and ``--set`` allow ``inf``)."""
    if isinstance(value, float) and not np.isfinite(value):
        raise SpecError(f"{where} = {value!r}: values must be finite numbers")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_finite(where, item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(f"{where[:-1]}.{key}'", item)


def _compile(where: str, tree: Tree, overrides: Mapping[str, Any]) -> Tree:
    """``tree`` with ``overrides`` applied, after checking that the engine accepts it."""
    try:
        config = paths.apply_overrides(tree, overrides)
        check_config(config)
    except SpecError as err:
        raise SpecError(f"{where}: {err}" if where else str(err)) from None
    return config


def _check_keys(where: str, raw: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be a table, got {raw!r}")
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


# -- loading ---------------------------------------------------------------------------------------


def list_batches() -> list[str]:
    """Names of the Batches shipped in ``larvastudy/studies/``."""
    return sorted(p.name[:-5] for p in _studies().iterdir() if p.name.endswith(".toml"))


def load_batch(name_or_path: str | Path, check: bool = True) -> Batch:
    """A shipped Batch by name, or a Batch from a TOML file path (``check``: see :class:`Batch`)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise SpecError(f"no such Batch file: {path}")
        text, name, where = path.read_text(), path.stem, str(path)
    else:
        resource = _studies().joinpath(f"{name_or_path}.toml")
        if not resource.is_file():
            raise SpecError(f"unknown Batch {str(name_or_path)!r}; available: {', '.join(list_batches())} "
                            "(or give the path of a .toml file)")
        text, name, where = resource.read_text(), str(name_or_path), f"{name_or_path}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{where}: {err}") from None
    _check_keys(where, data, _TOML_KEYS)
    for key, example in (("experiment", 'experiment = "dish"'), ("sample", "[sample] Npoints = [5, 10]")):
        if key not in data:
            raise SpecError(f"{where}: missing key {key!r} (e.g. {example}; see larvastudy show dish)")
    metrics = data.get("metrics", ())
    try:
        return Batch(**{"name": name, **data, "metrics": metrics if isinstance(metrics, str) else tuple(metrics)},
                     check=check)
    except SpecError as err:
        raise SpecError(f"{where}: {err}") from None


def batch_from_kwargs(experiment: str, sample: Mapping[str, Any] | None = None,
                      fixed: Mapping[str, Any] | None = None, Nsims: int = 1,
                      metrics: list[str] | tuple[str, ...] | None = None,
                      optimization: Optimization | Mapping[str, Any] | None = None, name: str | None = None,
                      seed: int = 0, targets: Mapping[str, Any] | None = None, **larvaworld_extras: Any) -> Batch:
    """A Batch from ``BatchRun`` arguments, including larvaworld registry entries.

    Accepted registry keys: ``exp`` (must name ``experiment``), ``exp_kws`` (larvaworld's enrichment
    settings; larvastudy computes the Batch's metrics directly, so only ``enrichment`` and
    ``experiment`` are accepted, and ignored), ``space_search`` (axes; constants go to ``fixed``) and
    ``id`` (the name).
    """
    for key in larvaworld_extras:
        if key in _LARVAWORLD_RENAMED:
            raise SpecError(f"BatchRun argument {key!r}: {_LARVAWORLD_RENAMED[key]}")
    _check_keys("BatchRun arguments", larvaworld_extras, _LARVAWORLD_KEYS)
    exp = larvaworld_extras.get("exp", experiment)
    exp_kws = larvaworld_extras.get("exp_kws") or {}
    _check_keys("exp_kws", exp_kws, ("enrichment", "experiment"))
    for other in (exp, exp_kws.get("experiment", experiment)):
        if other != experiment:
            raise SpecError(f"experiment {experiment!r} disagrees with the registry entry's {other!r}")
    axes = dict(sample or {})
    consts = dict(fixed or {})
    for axis, spec in (larvaworld_extras.get("space_search") or {}).items():
        target = axes if isinstance(spec, (Mapping, list, tuple, np.ndarray)) else consts
        if axis in target:
            raise SpecError(f"{axis!r} is given twice (in sample/fixed and in space_search)")
        target[axis] = spec
    return Batch(name=name or larvaworld_extras.get("id") or experiment, experiment=experiment, sample=axes,
                 fixed=consts, Nsims=Nsims, metrics=tuple(metrics or ()),
                 optimization=(Optimization.from_dict(optimization) if isinstance(optimization, Mapping)
                               else optimization),
                 seed=seed, targets=targets or {})


def _studies() -> Traversable:
    return files("larvastudy").joinpath("studies")
