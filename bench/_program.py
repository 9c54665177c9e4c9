"""The ``larvastudy`` program the benchmarks run: the console script beside this interpreter, so a benchmark
measures the installation it imports, with or without an activated virtual environment."""

from __future__ import annotations

import sys
from pathlib import Path

#: Path of the ``larvastudy`` console script of this interpreter's environment.
LARVASTUDY = str(Path(sys.executable).with_name("larvastudy"))
