"""Stop signals: SIGTERM and SIGHUP stop like Ctrl-C (unless ignored, as under nohup), a stop swallowed on
the way is still acted on, and a write in progress finishes first."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from larvastudy.signals import Terminated, check_stop, forget_stop, stop_on_signals, stop_signal, uninterrupted


def test_sigterm_raises_terminated_and_says_which_signal():
    with stop_on_signals():
        with pytest.raises(Terminated) as stop:
            os.kill(os.getpid(), signal.SIGTERM)
        assert stop_signal(stop.value) == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt) as stop:
            os.kill(os.getpid(), signal.SIGINT)
        assert stop_signal(stop.value) == signal.SIGINT
        forget_stop()
        check_stop()  # forgotten: nothing to raise
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_stop_swallowed_on_the_way_is_raised_at_the_next_check():
    with stop_on_signals():
        with contextlib.suppress(Terminated):  # as Python does with an exception raised while a finaliser runs
            os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Terminated):
            check_stop()
    check_stop()  # the block is over: nothing is remembered


def test_a_write_finishes_before_the_stop():
    done = []
    with stop_on_signals(), pytest.raises(KeyboardInterrupt), uninterrupted():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("written")
    assert done == ["written"]


def test_sighup_stops_like_sigterm_unless_it_was_ignored():
    with stop_on_signals():
        with pytest.raises(Terminated) as stop:
            os.kill(os.getpid(), signal.SIGHUP)
        assert stop_signal(stop.value) == signal.SIGHUP
        forget_stop()
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with stop_on_signals(), uninterrupted():
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing raised, now or at the end of the blocks
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
