"""lnn_control.ros.spin without ROS: the first stop signal asks, a second one exits at once; a teardown that hangs
ends the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lnn_control.ros.spin import STOP_SIGNALS, StopRequest, teardown_deadline


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


def test_a_teardown_that_hangs_ends_the_process_with_its_tracebacks():
    # the hang seen: C++ busy-waiting with the GIL held (rmw_destroy_node); faulthandler's C thread needs no GIL
    code = ("import time; from lnn_control.ros.spin import teardown_deadline\n"
            "with teardown_deadline(0.5):\n    time.sleep(60)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    assert done.returncode == 1 and "Timeout" in done.stderr and "time.sleep" not in done.stdout, done.stderr
    assert "<string>" in done.stderr, "the traceback shows where it hung"


def test_a_teardown_in_time_leaves_the_process_alone():
    with teardown_deadline(5.0):
        pass
    with teardown_deadline(5.0):  # armed again after the first was cancelled: no exit either
        pass
