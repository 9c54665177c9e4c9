"""larvaworld's registry of preconfigured Batches, so larvaworld code runs with only its imports changed::

    from larvastudy import reg, BatchRun          # was: from larvaworld.lib import reg; ...sim import BatchRun

    batch_conf = reg.conf.Batch.getID("PItest_off")
    batch = BatchRun(experiment="PItest_off", **batch_conf)
    par_df, figs = batch.simulate(n_jobs=4)

The entries are larvaworld 2.5.1's ``Batch_dict()`` (lib/reg/stored_confs/sim_conf.py) as it builds them:
``exp``, ``exp_kws`` (``enrichment`` reduced to its processing keys: larvastudy computes metrics directly),
``optimization`` and ``space_search``, with larvaworld's own parameter names (``Odor.mean``, ``freq``;
docs/model.md, deviation 6, says what they mean here). ``larvastudy/studies/`` holds the same Batches as
TOML, with those names spelled out and comments on the registry's choices.
"""

from __future__ import annotations

import copy
from typing import Any

from larvastudy.errors import SpecError

__all__ = ["conf"]


def _entry(exp: str, space_search: dict[str, Any], proc: tuple[str, ...] = (), fit_par: str | None = None,
           max_Nsims: int = 5, absolute: bool = False, minimize: bool = True, threshold: float = 0.001
           ) -> dict[str, Any]:
    """One entry as larvaworld's ``bb(...)`` helper builds it (same defaults)."""
    return {
        "exp": exp,
        "exp_kws": {"enrichment": {"proc_keys": list(proc)}, "experiment": exp},
        "optimization": {"fit_par": fit_par, "minimize": minimize, "absolute": absolute, "max_Nsims": max_Nsims,
                         "threshold": threshold, "operator": "mean"},
        "space_search": space_search,
    }


_BATCHES: dict[str, dict[str, Any]] = {e["exp"]: e for e in [
    _entry("PItest_off", {"gain_dict.CS": [[-100.0, 100.0], 4], "gain_dict.UCS": [[-100.0, 100.0], 4]},
           proc=("PI",)),
    _entry("patchy_food", {"EEB": [[0.0, 1.0], 3], "freq": [[1.5, 2.5], 3]}, fit_par="ingested_food_volume"),
    _entry("food_grid", {"EEB": [[0.0, 1.0], 6], "EEB_decay": [[0.1, 2.0], 6]}, fit_par="ingested_food_volume"),
    _entry("growth", {"EEB": [[0.5, 0.8], 8], "hunger_gain": [[0.0, 0.0], 1]}, fit_par="deb_f_deviation",
           max_Nsims=20, absolute=True),
    _entry("tactile_detection", {"initial_gain": [[25.0, 75.0], 10], "decay_coef": [[0.01, 0.5], 4]},
           fit_par="cum_food_detected", max_Nsims=600, threshold=100000.0, minimize=False),
    _entry("anemotaxis", {"windsensor.weights.bend_ang": [[-20.0, 20.0], 3],
                          "windsensor.weights.hunch_lin": [[-20.0, 20.0], 3]},
           proc=("wind",), fit_par="anemotaxis", max_Nsims=100, threshold=1000.0, minimize=False),
    *(_entry(exp, {"Odor.mean": [[300.0, 1300.0], 3], "decay_coef": [[0.1, 0.5], 3]},
             proc=("angular", "spatial", "source"), fit_par="final_dst_to_Source")
      for exp in ("chemotaxis", "chemorbit")),
    *(_entry(exp, {"input_noise": [[0.0, 0.4], 2], "decay_coef": [[0.1, 0.5], 2]}, proc=("PI",))
      for exp in ("PItrain_mini", "PItrain")),
]}


class BatchRegistry:
    """``reg.conf.Batch``: the registry's Batch entries by id."""

    def getIDs(self) -> list[str]:  # larvaworld's name (not PEP 8)
        """Every registered Batch id, in larvaworld's order."""
        return list(_BATCHES)

    def getID(self, id: str) -> dict[str, Any]:  # larvaworld's names (not PEP 8; id shadows the builtin)
        """The entry ``id`` as ``BatchRun`` keyword arguments (a copy: change it freely)."""
        if id not in _BATCHES:
            raise SpecError(f"no Batch {id!r} in the registry; registered: {', '.join(_BATCHES)}")
        return copy.deepcopy(_BATCHES[id])


class Conf:
    """``reg.conf``: larvaworld's configuration registries (here, only ``Batch``)."""

    Batch = BatchRegistry()


conf = Conf()
