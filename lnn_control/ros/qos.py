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

#: What a recorder must have from the first message although it may match a moment late (the start of a run): a
#: demonstrator's labels and the policy's commands. Reliable and transient local, keep last 50 (the recorder's
#: ``qos_depth``): a subscriber asking for transient local gets up to 50 earlier messages when it matches; the usual
#: volatile ones (the command mux, twist_mux, controllers, sim_node) get only new messages, so none acts on old
#: commands.
KEPT = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
