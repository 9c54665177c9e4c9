"""Shared output of the benchmark scripts: print the result lines, and keep them in a file if asked."""

from __future__ import annotations

from pathlib import Path


def report(lines: list[str], out: Path | None) -> None:
    """Print ``lines``; with ``out`` (``--out``), also write them there for bench/results/."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n")
