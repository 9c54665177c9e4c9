"""Ctrl-C, SIGTERM and SIGHUP during a command: all stop it the same way, and short writes finish before they do.

A stop signal that was ignored when the block began (``nohup`` ignores SIGHUP) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals that stop a command: Ctrl-C, a scheduler's or ``kill``'s stop request, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))
#: Stop signals received inside :func:`stop_on_signals` and not yet acted on (see :func:`check_stop`).
_received: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``signum``), raised where Ctrl-C would be."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_signal(stop: KeyboardInterrupt) -> int:
    """The signal behind ``stop``: that of a :class:`Terminated`, else SIGINT (Ctrl-C)."""
    return int(getattr(stop, "signum", signal.SIGINT))


def _interrupt(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _handled() -> list[int]:
    """The stop signals this process does not ignore."""
    return [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block, SIGINT raises KeyboardInterrupt and SIGTERM or SIGHUP :class:`Terminated` (a
    KeyboardInterrupt), so that a command stops on any of them as cleanly as on Ctrl-C. Each is also
    remembered until :func:`check_stop` or the end of the block: an exception raised while Python
    runs a finaliser is printed and dropped ("Exception ignored in ..."), and the request must not be.
    Only the main thread can take signals: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        _received.append(signum)
        raise _interrupt(signum)

    previous = {sig: signal.signal(sig, stop) for sig in _handled()}
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
    """A stop signal inside the block takes effect when it ends, so a write is never cut halfway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in _handled()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        raise _interrupt(pending[0])
