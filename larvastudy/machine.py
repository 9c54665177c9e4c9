"""What this machine has: the limits that input checks compare a request with."""

from __future__ import annotations

import os


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the system tells it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def gigabytes(size: float) -> str:
    """A byte count as a short text: ``1.5 GB`` or ``80 MB``."""
    return f"{size / 1e9:,.1f} GB" if size >= 1e8 else f"{size / 1e6:,.0f} MB"
