"""Arena boundary of larvaworld's position correction (spec §2.3).

The allowed region is the arena polygon scaled by ``boundary_margin`` = 0.96: a rectangle, or for a
circular arena the regular 60-gon (first vertex on +x) inscribed in a circle of radius 0.96·D/2.
"""

from __future__ import annotations

import math

import numpy as np

BOUNDARY_MARGIN = 0.96
CIRCLE_VERTICES = 60
_SECTOR = 2 * math.pi / CIRCLE_VERTICES
_NORMALS = np.exp(1j * (np.arange(CIRCLE_VERTICES) + 0.5) * _SECTOR)   # outward edge normals
_INWARD = _NORMALS.conj()   # multiplying by it rotates an edge normal onto +x


def _sector(z: np.ndarray) -> np.ndarray:
    """Index of the polygon edge whose angular sector holds each point."""
    return np.floor(np.angle(z) / _SECTOR).astype(int) % CIRCLE_VERTICES


class Arena:
    """Boundary of one arena geometry; widths and heights are per larva."""

    def __init__(self, geometry: str, width: np.ndarray, height: np.ndarray):
        self.geometry, self.width, self.height = geometry, width, height
        self.half_x = BOUNDARY_MARGIN * width / 2
        self.half_y = BOUNDARY_MARGIN * height / 2
        self.apothem = self.half_x * math.cos(math.pi / CIRCLE_VERTICES)   # centre-to-edge distance

    def outside(self, z: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Whether each point lies outside the allowed region (``rows`` selects the larvae of ``z``)."""
        if self.geometry == "rectangular":
            hx, hy = (self.half_x, self.half_y) if rows is None else (self.half_x[rows], self.half_y[rows])
            return (np.abs(z.real) > hx) | (np.abs(z.imag) > hy)
        apothem = self.apothem if rows is None else self.apothem[rows]
        out = np.abs(z) > apothem
        if np.count_nonzero(out):
            # Between the inscribed circle and the vertices: test against the edge of the sector.
            idx = out.nonzero()[0]
            near = z[idx]
            out[idx] = (near * _INWARD[_sector(near)]).real > apothem[idx]
        return out

    def reach(self, start: np.ndarray, direction: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Distance from inside points ``start`` along unit vectors ``direction`` to the boundary."""
        if self.geometry == "rectangular":
            half = np.stack([self.half_x[rows], self.half_y[rows]], axis=1)
            coords = np.stack([start.real, start.imag], axis=1)
            dirs = np.stack([direction.real, direction.imag], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                limit = np.where(dirs > 0, (half - coords) / dirs, np.where(dirs < 0, (-half - coords) / dirs, np.inf))
        else:
            # The ray leaves the polygon through the edge whose sector holds its exit from the
            # circumscribed circle, or a neighbour of it: test those three edges.
            radius = self.apothem[rows] / math.cos(math.pi / CIRCLE_VERTICES)
            along = (start * direction.conj()).real
            exit_ = start + (np.sqrt(np.maximum(along**2 + radius**2 - np.abs(start) ** 2, 0.0)) - along) * direction
            inward = _INWARD[(_sector(exit_)[:, None] + np.arange(-1, 2)) % CIRCLE_VERTICES]
            coords = (start[:, None] * inward).real
            dirs = (direction[:, None] * inward).real
            with np.errstate(divide="ignore", invalid="ignore"):
                limit = np.where(dirs > 0, (self.apothem[rows, None] - coords) / dirs, np.inf)
        return np.maximum(limit.min(axis=1), 0.0)
