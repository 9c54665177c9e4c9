"""larvastudy: parameter sweeps of larva behaviour simulations as Optuna studies.

The public API is imported lazily, so that ``import larvastudy.engine`` (in worker processes, say)
does not pull in Optuna, pandas and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BatchRun": "larvastudy.api",
    "Batch": "larvastudy.definition.batch",
    "load_batch": "larvastudy.definition.batch",
    "list_batches": "larvastudy.definition.batch",
    "run_batch": "larvastudy.api",
    "simulate": "larvastudy.engine",
    "simulate_many": "larvastudy.engine",
    "SpecError": "larvastudy.errors",
    "LarvastudyError": "larvastudy.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'larvastudy' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
