"""QoS profiles used by the nodes."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Camera frames and features: best effort, keep last 5 (rclpy's sensor-data profile).
SENSOR = qos_profile_sensor_data

#: Commands and small state: reliable, keep last 10.
COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)

#: Latched status (e.g. mux/active_source): late joiners get the last value.
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

#: A demonstrator's labels: reliable and transient local, keep last 50 (the recorder's ``qos_depth``), so a recorder
#: whose subscription matches a moment after the first labels went out (the start of a run) still gets them.
LABELS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
