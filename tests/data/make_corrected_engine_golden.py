"""Writes corrected_engine_d278bf8.json: per experiment, the sum over larvae of every metric of one 1-minute
simulation (seed 7). It was run on the engine of commit d278bf8, before the ``fidelity`` parameter existed
(``git worktree add /tmp/old d278bf8 && PYTHONPATH=/tmp/old python tests/data/make_corrected_engine_golden.py``);
tests/test_fidelity_mode.py checks that ``fidelity = "corrected"`` still gives these numbers.
"""

import json

from larvastudy.engine import simulate

try:
    from larvastudy.definition.paths import apply_overrides
    from larvastudy.definition.presets import experiment_tree
except ImportError:  # d278bf8, the engine this file records, called the package spec/
    from larvastudy.spec.paths import apply_overrides
    from larvastudy.spec.presets import experiment_tree

#: The experiments and their overrides (chemotaxis at a gain where the olfactor output leaves [-1, 1]).
CONDITIONS = {
    "PItest_off": {"duration": 1.0},
    "patchy_food": {"duration": 1.0},
    "food_grid": {"duration": 1.0},
    "chemotaxis": {"duration": 1.0, "gain_dict.Odor": 1300.0},
    "dish": {"duration": 1.0},
}
SEED = 7

if __name__ == "__main__":
    sums = {}
    for experiment, overrides in CONDITIONS.items():
        result = simulate(apply_overrides(experiment_tree(experiment), overrides), SEED)
        sums[experiment] = {name: float(values.sum()) for name, values in result.per_larva.items()}
    print(json.dumps({"seed": SEED, "conditions": CONDITIONS, "sums": sums}, indent=1, sort_keys=True))
