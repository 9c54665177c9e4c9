"""The ``neural`` turner of larvaworld 2.5.1 (spec §3.3), vectorized over larvae.

The upstream oscillator has eight variables, but ``H_Cl``/``H_Cr`` obey exactly the same update as
``H_El``/``H_Er`` (same drive ``E``, same rate, same zero start), so they are kept once: the state
is ``E`` and ``H``, each (2, n) with rows (left, right), and ``C`` with rows (right, left) so that
each ``E`` row reads the opposite ``C`` without a copy. Results are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from functools import lru_cache

import numpy as np

from larvastudy.engine.arrays import Floats

WARMUP_FLIPS = 1000


@dataclass(frozen=True)
class NeuralParams:
    """Turner constants of one larva group (hashable, so warm-ups can be cached)."""

    base_activation: float
    activation_low: float
    activation_high: float
    tau: float
    w_ee: float
    w_ce: float
    w_ec: float
    w_cc: float
    m: float
    n: float


PARAM_NAMES = tuple(f.name for f in fields(NeuralParams))


class NeuralTurner:
    """State and per-larva constants of n turners; ``step`` advances them all by one dt.

    Constants are stored stacked as (2, n) like the state (both rows equal): operands of equal shape
    avoid numpy's broadcasting machinery, which costs more than the arithmetic on small arrays.
    """

    # Row views of E and C (iterating an array gives them, typed Any).
    E_l: Floats
    E_r: Floats
    C_r: Floats
    C_l: Floats
    #: Per C row (left first): the row views its sequential update reads, C_new, C_other, E_own, w_ce, w_cc,
    #: dt_tau, m, zero.
    c_updates: list[tuple[Floats, Floats, Floats, Floats, Floats, Floats, Floats, Floats]]

    def __init__(self, dt: float, params: dict[str, Floats], state: Floats):
        def rows(values: Floats | float) -> Floats:
            return np.broadcast_to(values, (2, params["base_activation"].size)).copy()

        self.base = rows(params["base_activation"])
        self.up = rows(params["activation_high"]) - self.base
        self.down = self.base - rows(params["activation_low"])
        self.dt_tau = rows(dt / params["tau"])
        self.w_ee, self.w_ce, self.w_ec, self.w_cc = (rows(params[k]) for k in ("w_ee", "w_ce", "w_ec", "w_cc"))
        self.m, self.n = rows(params["m"]), rows(params["n"])
        # dt/τh = dt·(1 + (0.04A)²)/3 and g = 6 + (0.09A)², as affine functions of A².
        self.th0, self.th1 = rows(dt / 3.0), rows(dt * 0.0016 / 3.0)
        self.g0, self.g1 = rows(6.0), rows(0.0081)
        self.h0, self.zero, self.stack = rows(64.0), rows(0.0), rows(1.0)
        squares = self.n == 2.0
        # n = 2 (every preset) squares exactly; other n use power. Per larva, so mixing is exact.
        self._pow: Callable[[Floats], Floats]
        if squares.all():
            self._pow = np.square
        elif not squares.any():
            self._pow = lambda x: x**self.n if x.ndim == 2 else x**self.n[0]
        else:
            self._pow = lambda x: (np.where(squares, x * x, x**self.n) if x.ndim == 2
                                   else np.where(squares[0], x * x, x**self.n[0]))
        self.E, self.C, self.H = state[0:2].copy(), state[3:1:-1].copy(), state[4:6].copy()
        (self.E_l, self.E_r), (self.C_r, self.C_l) = self.E, self.C   # row views, updated in place
        self.c_updates = [(C_new, C_other, E_own, self.w_ce[row], self.w_cc[row], self.dt_tau[row], self.m[row],
                           self.zero[row])
                          for row, (C_new, C_other, E_own) in enumerate(((self.C_l, self.C_r, self.E_l),
                                                                         (self.C_r, self.C_l, self.E_r)))]

    def step(self, drive: Floats) -> Floats:
        """Advance by one dt with sensory input ``drive`` (already limited to [-1, 1]); return E_r − E_l."""
        E, H, zero = self.E, self.H, self.zero
        drive = self.stack * drive
        A = self.base + np.where(drive >= zero, self.up, self.down) * drive
        A2 = A * A
        th = self.th0 + self.th1 * A2
        h2 = self._pow(self.h0 + (self.g0 + self.g1 * A2) * H)
        # E_l and E_r read the *old* C_r and C_l: one stacked update. The rate is
        # m·xⁿ/(xⁿ + hⁿ) for x > 0, else 0 (h = 64 + g·H is always positive).
        xn = self._pow(np.maximum(A + self.w_ee * E - self.w_ec * self.C, zero))
        E += self.dt_tau * (self.m * xn / (xn + h2) - E)
        H += th * (E - H)
        # C_l first, then C_r reads the new C_l; H_C (== H_E) is still the pre-update value in h2.
        for row, (C_new, C_other, E_own, w_ce, w_cc, dt_tau, m, zero) in enumerate(self.c_updates):
            xn = self._pow(np.maximum(A[row] + w_ce * E_own - w_cc * C_other, zero))
            C_new += dt_tau * (m * xn / (xn + h2[row]) - C_new)
        return self.E_r - self.E_l


@lru_cache(maxsize=32)
def warmup_trajectory(dt: float, params: NeuralParams) -> Floats:
    """State after k = 0 … 1000 warm-up steps at zero input, shape (1001, 6): E, C, H rows."""
    turner = NeuralTurner(dt, {k: np.array([v]) for k, v in zip(PARAM_NAMES, astuple(params), strict=True)},
                          np.zeros((6, 1)))
    zero = np.zeros(1)
    out = np.empty((WARMUP_FLIPS + 1, 6))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # an unstable dt: see BatchRun.diverged
        for k in range(WARMUP_FLIPS + 1):
            out[k] = np.concatenate([turner.E[:, 0], turner.C[::-1, 0], turner.H[:, 0]])
            turner.step(zero)
    return out
