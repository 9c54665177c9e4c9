"""Arena boundary test of larvaworld's position correction (spec §2.3).

The allowed region is the arena polygon scaled by ``boundary_margin`` = 0.96: a rectangle, or for a
circular arena the regular 60-gon (first vertex on +x) inscribed in a circle of radius 0.96·D/2.
"""

from __future__ import annotations

import math

import numpy as np

BOUNDARY_MARGIN = 0.96
CIRCLE_VERTICES = 60


class Arena:
    """Boundary of one arena geometry; widths and heights may differ per larva."""

    def __init__(self, geometry: str, width: np.ndarray, height: np.ndarray):
        self.geometry, self.width, self.height = geometry, width, height
        self.half_x = BOUNDARY_MARGIN * width / 2
        self.half_y = BOUNDARY_MARGIN * height / 2
        # Distance from the centre to each polygon edge (the apothem).
        self.apothem = self.half_x * math.cos(math.pi / CIRCLE_VERTICES)
        if np.all(width == width[0]):
            self.half_x, self.half_y, self.apothem = (float(a[0]) for a in (self.half_x, self.half_y, self.apothem))

    @staticmethod
    def _pick(value: float | np.ndarray, rows: np.ndarray | None) -> float | np.ndarray:
        return value if rows is None or np.isscalar(value) else value[rows]

    def outside(self, z: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Whether each point lies outside the allowed region (``rows`` selects the larvae of ``z``)."""
        if self.geometry == "rectangular":
            return (np.abs(z.real) > self._pick(self.half_x, rows)) | (np.abs(z.imag) > self._pick(self.half_y, rows))
        apothem = self._pick(self.apothem, rows)
        out = (z.real**2 + z.imag**2) > np.square(apothem)
        if out.any():
            # Between the inscribed circle and the vertices: test against the edge of the sector.
            idx = np.flatnonzero(out)
            sector = 2 * math.pi / CIRCLE_VERTICES
            angle = np.mod(np.angle(z[idx]), 2 * math.pi)
            normal = (np.floor(angle / sector) + 0.5) * sector
            distance = (z[idx] * np.exp(-1j * normal)).real
            out[idx] = distance > self._pick(apothem, idx) if not np.isscalar(apothem) else distance > apothem
        return out
