"""Dotted-path addressing of config trees: ``a.b[0].c``, short names by unique suffix, typed overrides.

A short name resolves like larvaworld's ``update_existingnestdict_by_suffix`` (spec §9.3) with two
deliberate differences: the suffix is dot-aligned (``CS`` does not match ``gain_dict.UCS``), and a
name that matches nothing, or several different things, is an error instead of being skipped.
Matches that differ only in the larva-group name are one parameter, applied to every group
(``gain_dict.CS`` sets every group's olfactor gain).

Tables in :data:`OPEN_TABLES` are keyed by the user's own names: ``gain_dict.<odor id>`` may name an
odor the model has no gain for; such a key is added with the value given (a Batch refuses an id that
no odor in its arena has: that gain would change nothing).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from larvastudy.definition.presets import Tree, group_model
from larvastudy.definition.space import is_number
from larvastudy.errors import SpecError

#: Names accepted for larvaworld compatibility, mapped to this tree's names.
ALIASES = {"Npoints": "distribution.N"}

#: Tables whose keys are user-chosen ids (odor ids), with the value type of a new key.
OPEN_TABLES = {"gain_dict": 0.0}

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_GROUP = re.compile(r"^larva_groups\.[^.]+\.")


def parse(path: str) -> list[str | int]:
    """Split ``a.b[0].c`` into ``['a', 'b', 0, 'c']``. Names never hold a slash: an axis name becomes part
    of column and figure file names."""
    if "/" in path or "\\" in path:
        raise SpecError(f"parameter name {path!r} contains a slash; names are like a.b[0].c")
    tokens: list[str | int] = []
    pos = 0
    for match in _TOKEN.finditer(path):
        gap = path[pos:match.start()]
        if gap not in ("", ".") or (gap == "." and pos == 0):
            raise SpecError(f"malformed parameter path {path!r}")
        key, index = match.groups()
        tokens.append(int(index) if index is not None else key)
        pos = match.end()
    if not tokens or pos != len(path):
        raise SpecError(f"malformed parameter path {path!r}")
    return tokens


def _join(prefix: str, token: str | int) -> str:
    if isinstance(token, int):
        return f"{prefix}[{token}]"
    return f"{prefix}.{token}" if prefix else token


def iter_paths(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every addressable node (subtrees, lists and leaves) as ``(path, value)``, depth first."""
    if isinstance(tree, Mapping):
        items: Any = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return
    for key, value in items:
        path = _join(prefix, key)
        yield path, value
        yield from iter_paths(value, path)


def get(tree: Tree, path: str) -> Any:
    """The value at full path ``path``."""
    node: Any = tree
    for token in parse(path):
        node = node[token]
    return node


def _suffix_match(path: str, name: str) -> bool:
    return path == name or path.endswith("." + name) or (name.startswith("[") and path.endswith(name))


def larvaworld_name(tree: Tree, name: str) -> str:
    """A larvaworld registry name that no longer addresses a parameter, as this tree names it
    (docs/model.md, deviation 6): ``<odor id>.mean`` is that odor's intensity, and ``freq``, ambiguous
    upstream (crawler, feeder, ...), is the feeder's frequency where larvae have a feeder. Other names as given."""
    odor, _, attribute = name.rpartition(".")
    if attribute == "mean" and odor:
        layers = tree.get("env_params", {}).get("odorscape", {}).get("odor_layers", [])
        for i, layer in enumerate(layers):
            if str(layer.get("id")) == odor:
                return f"env_params.odorscape.odor_layers[{i}].intensity"
    if name == "freq" and any(_suffix_match(path, "feeder.freq") for path, _ in iter_paths(tree)):
        return "feeder.freq"
    return name


def resolve(tree: Tree, name: str) -> list[str]:
    """The full paths a (possibly short) parameter name addresses; one parameter, maybe several groups."""
    name = larvaworld_name(tree, ALIASES.get(name, name))
    parse(name)
    matches = [path for path, _ in iter_paths(tree) if _suffix_match(path, name)]
    table, _, key = name.rpartition(".")
    if not matches and table.rpartition(".")[2] in OPEN_TABLES and _TOKEN.fullmatch(key):
        matches = [f"{path}.{key}" for path in resolve(tree, table)]
    if not matches:
        raise SpecError(f"unknown parameter {name!r}{_suggest(tree, name)}")
    relative = {_GROUP.sub("", path) for path in matches}
    if len(relative) > 1:
        shown = ", ".join(sorted(relative)[:6])
        raise SpecError(f"ambiguous parameter {name!r}: it matches {shown}; use a longer path")
    return matches


def short_name(tree: Tree, path: str) -> str:
    """The shortest dot-aligned suffix of ``path`` that resolves to the same parameter."""
    parts = path.split(".")
    target = set(resolve(tree, path))
    for start in range(len(parts) - 1, -1, -1):
        candidate = ".".join(parts[start:])
        try:
            if set(resolve(tree, candidate)) == target:
                return candidate
        except SpecError:
            continue
    return path


def _suggest(tree: Tree, name: str) -> str:
    suffixes: set[str] = set()
    for path, _ in iter_paths(tree):
        parts = _GROUP.sub("", path).split(".")
        suffixes.update(".".join(parts[i:]) for i in range(len(parts)))
    close = difflib.get_close_matches(name, sorted(suffixes), n=3, cutoff=0.6)
    if not close:
        last = name.split(".")[-1]
        close = difflib.get_close_matches(last, sorted(suffixes), n=3, cutoff=0.5)
    return f"; did you mean: {', '.join(close)}?" if close else ""


def coerce(path: str, old: Any, new: Any, experiment: str = "") -> Any:
    """``new`` converted to the type of ``old`` at ``path`` (a larva group's model: the preset ``new`` for that group
    of ``experiment``), or a :class:`SpecError`."""
    if path.endswith("model") and isinstance(old, Mapping) and "name" in old:
        if isinstance(new, str):
            return group_model(experiment, path.split(".")[1], new)
        raise SpecError(f"{path} takes a model preset name (a string), got {new!r}")
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        raise SpecError(f"{path} takes true or false, got {new!r}")
    if is_number(old):
        if not is_number(new):
            raise SpecError(f"{path} takes a number, got {new!r}")
        if isinstance(old, int):
            if float(new) != int(new):
                raise SpecError(f"{path} takes a whole number, got {new!r}")
            return int(new)
        return float(new)
    if isinstance(old, str):
        if isinstance(new, str):
            return new
        raise SpecError(f"{path} takes a string, got {new!r}")
    if isinstance(old, list):
        if not isinstance(new, (list, tuple)) or len(new) != len(old):
            raise SpecError(f"{path} takes a list of {len(old)} values, got {new!r}")
        return [coerce(f"{path}[{i}]", o, n) for i, (o, n) in enumerate(zip(old, new, strict=True))]
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping):
            raise SpecError(f"{path} takes a table of values, got {new!r}")
        return copy.deepcopy(dict(new))
    return copy.deepcopy(new)


def _set(tree: Tree, path: str, value: Any) -> None:
    tokens = parse(path)
    node: Any = tree
    for token in tokens[:-1]:
        node = node[token]
    node[tokens[-1]] = value


def _current(tree: Tree, path: str) -> Any:
    """The value at ``path``, or for a new key of an open table, a value of the type it takes."""
    table, _, key = path.rpartition(".")
    if table.rpartition(".")[2] in OPEN_TABLES and key not in get(tree, table):
        return OPEN_TABLES[table.rpartition(".")[2]]
    return get(tree, path)


def apply_overrides(tree: Tree, overrides: Mapping[str, Any]) -> Tree:
    """A copy of ``tree`` with every ``name: value`` applied (model replacements first)."""
    result = copy.deepcopy(tree)
    ordered = sorted(overrides.items(), key=lambda item: ALIASES.get(item[0], item[0]).split(".")[-1] != "model")
    for name, value in ordered:
        for path in resolve(result, name):
            _set(result, path, coerce(path, _current(result, path), value, str(result.get("experiment", ""))))
    return result
