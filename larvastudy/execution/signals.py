"""Ctrl-C and SIGTERM during a run: both stop it the same way, and short writes finish before they do."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster scheduler's or ``kill``'s stop request), raised where Ctrl-C would be."""

    signum = signal.SIGTERM


def stop_signal(stop: KeyboardInterrupt) -> int:
    """The signal behind ``stop``: SIGTERM for :class:`Terminated`, else SIGINT (Ctrl-C)."""
    return int(getattr(stop, "signum", signal.SIGINT))


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt), so a run stops on it as
    cleanly as on Ctrl-C. Only the main thread can take signals: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block takes effect when it ends, so a write is never cut halfway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        raise Terminated if pending[0] == signal.SIGTERM else KeyboardInterrupt
