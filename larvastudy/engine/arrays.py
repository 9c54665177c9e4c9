"""The engine's array types, for annotations: numpy arrays of one element type, of any shape.

Annotated with these rather than a bare ``np.ndarray``, arithmetic on the engine's arrays keeps its element type
for mypy (a bare ``np.ndarray`` holds ``Any`` elements, and most numpy operators on it give ``Any``). Where numpy's
stubs still give ``Any`` (an integer index, a reduction along an axis, arithmetic on a ufunc's result), a local
variable annotated with one of these says what the value is, at no cost at run time.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

Floats: TypeAlias = npt.NDArray[np.float64]
Complexes: TypeAlias = npt.NDArray[np.complex128]
#: Indices and counts (numpy's default integer, ``int`` as a dtype).
Ints: TypeAlias = npt.NDArray[np.intp]
Bools: TypeAlias = npt.NDArray[np.bool_]
