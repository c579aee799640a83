"""lnn_control.ros.spin's signal handling, without ROS: the first stop signal asks, a second one exits at once."""

from __future__ import annotations

import os
import signal

import pytest

from lnn_control.ros.spin import STOP_SIGNALS, StopRequest


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_first_signal_asks_second_exits_at_once(sig):
    exits: list[int] = []
    before = signal.getsignal(sig)
    with StopRequest(exit_now=exits.append) as stop:
        assert not stop.requested
        os.kill(os.getpid(), sig)  # Python runs the handler before the next bytecode of this thread
        assert stop.requested and stop.signum == sig and exits == []
        os.kill(os.getpid(), sig)
        assert exits == [130 if sig == signal.SIGINT else 128 + sig]
    assert signal.getsignal(sig) is before, "the previous handler is back"


def test_a_request_without_a_signal():
    with StopRequest(exit_now=lambda code: pytest.fail(f"exit {code}")) as stop:
        stop.request()
        assert stop.requested and stop.signum is None
