"""Suite-wide settings (one torch thread per test process) and fixtures.

The machine (and CI) has two cores; two OpenMP threads on a busy second core made the conv head 20x slower in a
measurement here (27 ms vs 1.5 ms), so tests run single-threaded like the nodes do by default.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rclpy_context():
    """An rclpy context on local DDS without rclpy's signal handlers, for tests that build nodes in this process."""
    pytest.importorskip("rclpy")
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    from lnn_control.ros import env as ros_env

    ros_env.apply(ros_env.local_env())
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    yield context
    context.try_shutdown()
