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

from larvastudy.spec.batch import Batch, list_batches, load_batch

#: Fields of ``Batch.to_dict()`` that name a study's sweep, Nsims aside (raising Nsims extends a study).
FIELDS = ("experiment", "sample", "fixed", "metrics", "optimization", "seed", "targets")
#: Hex digits of the definition hash in a default study name.
HASH_LENGTH = 6
_UNSET = object()
#: Fields whose entries are named one by one, with the prefix their names get.
_BY_ENTRY = {"fixed": "", "sample": "sample ", "optimization": "optimization ", "targets": "target "}


def differences(stored: Mapping[str, Any], requested: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """Each difference of ``requested`` from ``stored`` (JSON-like ``Batch.to_dict()`` forms) in ``fields``."""
    found = []
    for key in fields:
        before, after = stored.get(key), requested.get(key)
        if key in _BY_ENTRY and isinstance(before, Mapping) and isinstance(after, Mapping):
            for entry in dict.fromkeys([*before, *after]):
                old, new = before.get(entry, _UNSET), after.get(entry, _UNSET)
                if old != new:
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


def _shown(value: Any) -> str:
    """A value in a difference: JSON-like, shortened if long."""
    if value is _UNSET:
        return "unset"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
