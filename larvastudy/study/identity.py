"""What identifies a Batch's study: its differences from a stored definition, named one by one, and the
default study name of a Batch made in Python (its own unless it equals the shipped Batch of that name).

A difference reads ``name: stored -> requested``: a fixed parameter by its path (``duration: 5.0 -> 0.3``),
an axis as ``sample <axis>``, anything else by its field (``experiment: dish -> chemotaxis``,
``optimization fit_par: PI -> v_mu``, ``target v_mu: ...``); a side that lacks it shows ``unset``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from larvastudy.definition import paths
from larvastudy.definition.batch import Batch, list_batches, load_batch
from larvastudy.definition.presets import experiment_tree
from larvastudy.errors import SpecError

#: Fields of ``Batch.to_dict()`` that name a study's sweep, Nsims aside (raising Nsims extends a study).
FIELDS = ("experiment", "sample", "fixed", "metrics", "optimization", "seed", "targets")
#: Hex digits of the definition hash in a default study name.
HASH_LENGTH = 6
_UNSET = object()
#: Fields whose entries are named one by one, with the prefix their names get.
_BY_ENTRY = {"fixed": "", "sample": "sample ", "optimization": "optimization ", "targets": "target "}


def differences(stored: Mapping[str, Any], requested: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """Each difference of ``requested`` from ``stored`` (JSON-like ``Batch.to_dict()`` forms) in ``fields``; a
    fixed parameter one side leaves unset shows the experiment's own value (``duration: 1.0 (preset) -> 0.3``)."""
    found = []
    for key in fields:
        before, after = stored.get(key), requested.get(key)
        if key in _BY_ENTRY and isinstance(before, Mapping) and isinstance(after, Mapping):
            for entry in dict.fromkeys([*before, *after]):
                old, new = before.get(entry, _UNSET), after.get(entry, _UNSET)
                if old != new:
                    if key == "fixed":
                        old, new = (_preset(stored.get("experiment"), entry) if v is _UNSET else v for v in (old, new))
                    found.append(f"{_BY_ENTRY[key]}{entry}: {_shown(old)} -> {_shown(new)}")
        elif before != after:
            found.append(f"{key}: {_shown(before)} -> {_shown(after)}")
    return found


def default_study_name(batch: Batch) -> str:
    """The study of a Batch made in Python: ``batch.name`` if it equals the shipped Batch of that name in
    :data:`FIELDS`, else ``<batch.name>-<hash of those fields>``, so that different definitions never share
    (nor take over a shipped Batch's) study, and the same definition always finds its own again."""
    if batch.name in list_batches() and _identity(load_batch(batch.name, check=False)) == _identity(batch):
        return batch.name
    text = json.dumps(_identity(batch), sort_keys=True)
    return f"{batch.name}-{hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]}"


def _identity(batch: Batch) -> dict[str, Any]:
    data = json.loads(json.dumps(batch.to_dict()))
    return {key: data[key] for key in FIELDS}


class _Preset:
    """The experiment's own value of a parameter no fixed override sets."""

    def __init__(self, value: Any):
        self.value = value


def _preset(experiment: Any, name: str) -> Any:
    """Parameter ``name``'s value in ``experiment``'s preset tree, or unset if it has none (or several)."""
    try:
        tree = experiment_tree(experiment)
        found = {json.dumps(paths.get(tree, path)) for path in paths.resolve(tree, name)}
    except (SpecError, KeyError, IndexError, TypeError):
        return _UNSET
    return _Preset(json.loads(found.pop())) if len(found) == 1 else _UNSET


def _shown(value: Any) -> str:
    """A value in a difference: JSON-like, shortened if long."""
    if value is _UNSET:
        return "unset"
    if isinstance(value, _Preset):
        return f"{_shown(value.value)} (preset)"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
