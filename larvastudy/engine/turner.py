"""The ``neural`` turner of larvaworld 2.5.1 (spec §3.3), vectorized over larvae.

The upstream oscillator has eight variables, but ``H_Cl``/``H_Cr`` obey exactly the same update as
``H_El``/``H_Er`` (same drive ``E``, same rate, same zero start), so they are kept once: the state
is ``E`` (2, n), ``C`` (2, n) and ``H`` (2, n), rows ordered (left, right). Results are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

WARMUP_FLIPS = 1000


@dataclass(frozen=True)
class NeuralParams:
    """Turner constants; each is a float, or an (n,) array where larvae differ."""

    dt: float
    base_activation: float | np.ndarray
    activation_low: float | np.ndarray
    activation_high: float | np.ndarray
    tau: float | np.ndarray
    w_ee: float | np.ndarray
    w_ce: float | np.ndarray
    w_ec: float | np.ndarray
    w_cc: float | np.ndarray
    m: float | np.ndarray
    n: float | np.ndarray


def _rate(x: np.ndarray, h2: np.ndarray, p: NeuralParams) -> np.ndarray:
    """``m·xⁿ/(xⁿ + hⁿ)`` for x > 0, else 0 (h = 64 + g·H is always positive)."""
    x = np.maximum(x, 0.0)
    xn = x * x if np.all(np.equal(p.n, 2.0)) else x**p.n
    return p.m * xn / (xn + h2)


def neural_step(E: np.ndarray, C: np.ndarray, H: np.ndarray, drive: np.ndarray,
                p: NeuralParams) -> np.ndarray:
    """Advance the state in place by one dt with sensory drive ``drive``; return ``E_r − E_l``.

    ``drive`` is the input already limited to [-1, 1] (see docs/model.md, deviation 3).
    """
    up = p.activation_high - p.base_activation
    down = p.base_activation - p.activation_low
    A = p.base_activation + np.where(drive >= 0, up, down) * drive
    A2 = A * A
    t = p.dt / p.tau
    th = p.dt * (1.0 + 0.0016 * A2) / 3.0          # dt / τh with τh = 3/(1 + (0.04A)²)
    g = 6.0 + 0.0081 * A2                          # 6 + (0.09A)²
    h = 64.0 + g * H
    h2 = h**p.n if not np.all(np.equal(p.n, 2.0)) else h * h
    # E_l and E_r read the *old* C_r and C_l: one stacked update.
    E += t * (_rate(A + p.w_ee * E - p.w_ec * C[::-1], h2, p) - E)
    H += th * (E - H)
    # C_l first, then C_r reads the new C_l; H_C (== H_E) is still the pre-update value.
    C[0] += t * (_rate(A + p.w_ce * E[0] - p.w_cc * C[1], h2[0], p) - C[0])
    C[1] += t * (_rate(A + p.w_ce * E[1] - p.w_cc * C[0], h2[1], p) - C[1])
    return E[1] - E[0]


@lru_cache(maxsize=32)
def warmup_trajectory(p: NeuralParams) -> np.ndarray:
    """State after k = 0 … 1000 warm-up steps at zero input, shape (1001, 6): E, C, H rows."""
    E, C, H = (np.zeros((2, 1)) for _ in range(3))
    zero = np.zeros(1)
    out = np.empty((WARMUP_FLIPS + 1, 6))
    for k in range(WARMUP_FLIPS + 1):
        out[k] = np.concatenate([E[:, 0], C[:, 0], H[:, 0]])
        neural_step(E, C, H, zero, p)
    return out
