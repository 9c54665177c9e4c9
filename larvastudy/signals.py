"""Ctrl-C and SIGTERM during a command: both stop it the same way, and short writes finish before they do."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Stop signals received inside :func:`stop_on_signals` and not yet acted on (see :func:`check_stop`).
_received: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster scheduler's or ``kill``'s stop request), raised where Ctrl-C would be."""

    signum = signal.SIGTERM


def stop_signal(stop: KeyboardInterrupt) -> int:
    """The signal behind ``stop``: SIGTERM for :class:`Terminated`, else SIGINT (Ctrl-C)."""
    return int(getattr(stop, "signum", signal.SIGINT))


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block, SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated` (a
    KeyboardInterrupt), so that a command stops on either as cleanly as on Ctrl-C. Each is also
    remembered until :func:`check_stop` or the end of the block: an exception raised while Python
    runs a finaliser is printed and dropped ("Exception ignored in ..."), and the request must not be.
    Only the main thread can take signals: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        _received.append(signum)
        raise _interrupt(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()


def check_stop() -> None:
    """Raise the stop a signal asked for if it was lost on the way (see :func:`stop_on_signals`)."""
    if _received:
        raise _interrupt(_received[0])


def forget_stop() -> None:
    """The stop asked for is being acted on: :func:`check_stop` no longer raises it."""
    _received.clear()


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
        raise _interrupt(pending[0])
