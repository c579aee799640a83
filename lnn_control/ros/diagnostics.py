"""``/diagnostics`` for any node: named checks, published as one ``diagnostic_msgs/DiagnosticArray`` per period.

Robots gather ``/diagnostics`` with diagnostic_aggregator (and rqt_robot_monitor shows it); twist_mux and most
drivers publish there. A node attaches one :class:`Diagnostics` and adds its checks; a check is any callable
returning a :class:`lnn_control.health.Report` (level, message, key-values), built with the ROS-free rules of
:mod:`lnn_control.health` (rate meters, ages, free disk space)::

    from lnn_control.health import RateMeter, Report, age_report
    from lnn_control.ros.diagnostics import Diagnostics

    self.frames = RateMeter(5.0, min_hz=10.0, what="frames")            # self.frames.tick(now_ns) per frame
    self.diagnostics = Diagnostics(self, hardware_id="camera0")         # declares diagnostics_period
    self.diagnostics.add("frame rate", lambda: self.frames.report(self.get_clock().now().nanoseconds))
    self.diagnostics.add("command", lambda: age_report("command", self.last_ns, self.now_ns(), warn_s=0.5))
    self.diagnostics.publish()  # optional: at once, on an event that matters (an e-stop)

What it does, as ``diagnostic_updater`` does it:

- declares the parameter ``diagnostics_period`` (seconds, default the ``period`` argument, 1.0; 0 disables the
  helper: no publisher, no timer, :meth:`add` still accepted);
- publishes on the absolute topic ``/diagnostics`` (a namespace does not move it; diagnostic_aggregator listens
  there) with default QoS (reliable, volatile, keep last 10);
- every period (steady clock: it reports even while sim time stands still) runs every check in the order added and
  publishes one array stamped with the node clock, one status per check named ``"<node name>: <task>"`` with
  ``hardware_id``; key-values as text (:func:`lnn_control.health.format_value`);
- a check that raises becomes an ERROR status naming the exception (logged, throttled), never a dead timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lnn_control.health import Level, Report
from lnn_control.ros.node_util import Throttle, declare_spec, describe, param

TOPIC = "/diagnostics"
PARAMETER = "diagnostics_period"

Check = Callable[[], Report]


@dataclass(frozen=True)
class DiagnosticsConfig:
    """The helper's parameter (declared on the node it is attached to)."""

    diagnostics_period: float = param(
        1.0, "seconds between /diagnostics arrays (steady clock); 0: no diagnostics", min=0.0, max=3600.0
    )


def status_name(node_name: str, task: str) -> str:
    """``"<node name>: <task>"``, diagnostic_updater's naming."""
    return f"{node_name}: {task}"


def status_msg(name: str, hardware_id: str, report: Report) -> Any:
    """One ``diagnostic_msgs/DiagnosticStatus`` of a report."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    status.level = bytes([int(report.level)])
    status.name = name
    status.message = report.message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=key, value=value) for key, value in report.text_values()]
    return status


class Diagnostics:
    """See the module docstring. ``period``: the default of ``diagnostics_period`` for this node."""

    def __init__(self, node: Any, *, period: float = 1.0, hardware_id: str = "") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.clock import Clock, ClockType

        self.node = node
        self.hardware_id = hardware_id
        self._checks: list[tuple[str, Check]] = []
        self._throttle = Throttle(10.0)
        (spec,) = describe(DiagnosticsConfig)
        self.period = float(declare_spec(node, PARAMETER, {**spec, "default": float(period)}))
        self.publisher = None
        self.timer = None
        self._array_type = DiagnosticArray
        if self.period > 0:
            self.publisher = node.create_publisher(DiagnosticArray, TOPIC, 10)
            self.timer = node.create_timer(self.period, self.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    @property
    def enabled(self) -> bool:
        return self.publisher is not None

    def add(self, task: str, check: Check) -> None:
        """Run ``check`` every period as status ``"<node name>: <task>"`` (task names must be unique)."""
        if any(name == task for name, _ in self._checks):
            raise ValueError(f"diagnostic task {task!r} is already added")
        self._checks.append((task, check))

    def reports(self) -> list[tuple[str, Report]]:
        """Every check run now: (status name, report); a check that raises gives an ERROR report."""
        node_name = self.node.get_name()
        out = []
        for task, check in self._checks:
            try:
                report = check()
                if not isinstance(report, Report):
                    raise TypeError(f"returned {type(report).__name__}, not a Report")
            except Exception as exc:  # noqa: BLE001 - a broken check must not stop the others or the node
                if self._throttle(task):
                    self.node.get_logger().error(f"diagnostic check {task!r} failed: {exc!r}")
                report = Report(Level.ERROR, f"check failed: {exc!r}")
            out.append((status_name(node_name, task), report))
        return out

    def array(self) -> Any:
        """The ``DiagnosticArray`` of every check run now, stamped with the node clock."""
        msg = self._array_type()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.status = [status_msg(name, self.hardware_id, report) for name, report in self.reports()]
        return msg

    def publish(self) -> None:
        """Run the checks and publish now (the timer calls this; a node may too, on an event). No-op if disabled."""
        if self.publisher is None or not self._checks or not self.node.context.ok():
            return
        self.publisher.publish(self.array())
