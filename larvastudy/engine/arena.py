"""Arena boundary of larvaworld's position correction (spec §2.3).

The allowed region is the arena scaled by ``boundary_margin`` = 0.96: a rectangle, or a circle of
radius 0.96·D/2. Upstream approximates the circle by a 60-gon (a drawing polygon reused for the
test); the engine uses the circle itself (deviation 4 in docs/model.md): the two differ by at most
0.14 % of the radius, and the circle has closed-form tests.
"""

from __future__ import annotations

import numpy as np

BOUNDARY_MARGIN = 0.96


class Arena:
    """Boundary of one arena geometry; widths and heights are per larva."""

    def __init__(self, geometry: str, width: np.ndarray, height: np.ndarray):
        self.geometry, self.width, self.height = geometry, width, height
        self.half_x = BOUNDARY_MARGIN * width / 2
        self.half_y = BOUNDARY_MARGIN * height / 2

    def outside(self, z: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Whether each point lies outside the allowed region.

        ``rows`` indexes the larvae the points belong to and broadcasts against ``z`` (e.g. shape
        (m, 1) for m larvae with k candidate points each); None means one point per larva.
        """
        hx, hy = (self.half_x, self.half_y) if rows is None else (self.half_x[rows], self.half_y[rows])
        if self.geometry == "rectangular":
            return (np.abs(z.real) > hx) | (np.abs(z.imag) > hy)
        return np.abs(z) > hx

    def reach(self, start: np.ndarray, direction: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Distance from inside points ``start`` along unit vectors ``direction`` to the boundary."""
        hx, hy = self.half_x[rows], self.half_y[rows]
        if self.geometry == "rectangular":
            with np.errstate(divide="ignore", invalid="ignore"):
                limits = [np.where(d > 0, (h - c) / d, np.where(d < 0, (-h - c) / d, np.inf))
                          for c, d, h in ((start.real, direction.real, hx), (start.imag, direction.imag, hy))]
            return np.maximum(np.minimum(*limits), 0.0)
        along = start.real * direction.real + start.imag * direction.imag
        return np.maximum(np.sqrt(np.maximum(along * along + hx * hx - np.square(np.abs(start)), 0.0)) - along, 0.0)
