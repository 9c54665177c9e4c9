"""Arena boundary of larvaworld's position correction (spec §2.3).

The allowed region is the arena scaled by ``boundary_margin`` = 0.96: a rectangle, or for a circular arena
the 60-gon larvaworld reuses from its drawing code (vertices at multiples of 6° on the circle of radius
0.96·D/2). The corrected model (deviation 4 in docs/model.md) uses the circle itself; the two differ by at
most 0.14 % of the radius.
"""

from __future__ import annotations

import math

import numpy as np

from larvastudy.engine.arrays import Bools, Complexes, Floats, Ints

BOUNDARY_MARGIN = 0.96
#: Vertices of larvaworld's circular arena (``util.circle_to_polygon(60, D / 2)``).
POLYGON_VERTICES = 60
_SECTOR = 2.0 * math.pi / POLYGON_VERTICES
#: Outward unit normals (x, y) of the 60-gon's edges: edge k lies between the vertices at k·6° and (k + 1)·6°.
_NORMAL_X: Floats = np.cos((np.arange(POLYGON_VERTICES) + 0.5) * _SECTOR)
_NORMAL_Y: Floats = np.sin((np.arange(POLYGON_VERTICES) + 0.5) * _SECTOR)


def _facing_projection(z: Complexes) -> Floats:
    """Each point's projection on the normal of the edge it faces (the largest of its projections), in real
    arithmetic as :func:`_projections`."""
    edge = np.floor(np.arctan2(z.imag, z.real) * (1.0 / _SECTOR)).astype(np.intp) % POLYGON_VERTICES
    result: Floats = z.real * _NORMAL_X[edge] + z.imag * _NORMAL_Y[edge]
    return result


def _projections(z: Complexes) -> Floats:
    """Each point's projection on every edge normal, shape (points, 60), in real arithmetic: a complex product
    might be fused differently for different array lengths (see engine/loop.py)."""
    return z.real[:, None] * _NORMAL_X + z.imag[:, None] * _NORMAL_Y


def grid_cells(x: Floats, y: Floats, shape: tuple[int, ...], sim: Ints, width: Floats, height: Floats) -> Ints:
    """Flat index of the food-grid cell under points (x, y) in a batch's grids, kept flat one simulation after the
    other (``sim``: each point's simulation; ``width``, ``height``: its arena's; all broadcast against ``x``)."""
    gx, gy = shape
    ix = np.clip(np.floor(gx * (x / width + 0.5)), 0, gx - 1).astype(int)
    iy = np.clip(np.floor(gy * (y / height + 0.5)), 0, gy - 1).astype(int)
    where: Ints = (sim * gx + ix) * gy + iy
    return where


class Arena:
    """Boundary of one arena geometry; widths and heights are per larva."""

    def __init__(self, geometry: str, width: Floats, height: Floats, polygon: bool = False):
        self.geometry, self.width, self.height = geometry, width, height
        self.half_x = BOUNDARY_MARGIN * width / 2
        self.half_y = BOUNDARY_MARGIN * height / 2
        self.polygon = polygon and geometry == "circular"
        # A regular polygon is the points whose projection on every edge normal is at most the apothem.
        self.apothem = self.half_x * math.cos(_SECTOR / 2)

    def outside(self, z: Complexes, rows: Ints | None = None) -> Bools:
        """Whether each point lies outside the allowed region.

        ``rows`` indexes the larvae the points belong to and broadcasts against ``z`` (e.g. shape
        (m, 1) for m larvae with k candidate points each); None means one point per larva.
        """
        hx, hy = (self.half_x, self.half_y) if rows is None else (self.half_x[rows], self.half_y[rows])
        if self.geometry == "rectangular":
            return (np.abs(z.real) > hx) | (np.abs(z.imag) > hy)
        if self.polygon:
            # Points inside the inscribed circle are inside; the others are outside where they project beyond
            # the apothem on some edge's normal.
            apothem = self.apothem if rows is None else np.broadcast_to(self.apothem[rows], z.shape)
            out = np.abs(z) > apothem
            if np.count_nonzero(out):
                out[out] = _facing_projection(z[out]) > apothem[out]
            return out
        return np.abs(z) > hx

    def beyond(self, z: Complexes, rows: Ints, distance: Floats) -> Bools:
        """Whether each point lies more than ``distance`` outside the allowed region, so that no point within
        ``distance`` of it is inside (with a margin far above rounding; for the 60-gon, outside its circumcircle)."""
        hx, hy, limit = self.half_x[rows], self.half_y[rows], distance * (1.0 + 1e-9)
        if self.geometry == "rectangular":
            dx, dy = np.maximum(np.abs(z.real) - hx, 0.0), np.maximum(np.abs(z.imag) - hy, 0.0)
            far: Bools = dx * dx + dy * dy > limit * limit
            return far
        outside_circle: Bools = np.abs(z) - hx > limit
        return outside_circle

    def reach(self, start: Complexes, direction: Complexes, rows: Ints) -> Floats:
        """Distance from inside points ``start`` along unit vectors ``direction`` to the boundary."""
        hx, hy = self.half_x[rows], self.half_y[rows]
        if self.geometry == "rectangular":
            with np.errstate(divide="ignore", invalid="ignore"):
                limits = [np.where(d > 0, (h - c) / d, np.where(d < 0, (-h - c) / d, np.inf))
                          for c, d, h in ((start.real, direction.real, hx), (start.imag, direction.imag, hy))]
            return np.maximum(np.minimum(*limits), 0.0)
        if self.polygon:
            at, towards = _projections(start), _projections(direction)
            with np.errstate(divide="ignore", invalid="ignore"):
                distances = np.where(towards > 0, (self.apothem[rows, None] - at) / towards, np.inf)
            nearest: Floats = distances.min(axis=1)   # the edge the ray crosses first
            return np.maximum(nearest, 0.0)
        along = start.real * direction.real + start.imag * direction.imag
        return np.maximum(np.sqrt(np.maximum(along * along + hx * hx - np.square(np.abs(start)), 0.0)) - along, 0.0)
