"""Parameters of earlier releases and what replaced them, light enough for ``up`` and the launch files (no torch,
no rclpy): they refuse a file that still sets an old name, as ``eval --driver-config`` does, since rclpy would
ignore it silently."""

#: The driving nodes' parameters of the car that became action limits.
RENAMED_LIMITS = {
    "max_speed": "limits.velocity.max",
    "min_speed": "limits.velocity.min",
    "max_steering": "limits.steering.max (and limits.steering.min)",
    "max_steering_rate": "limits.steering.max_rate",
}

#: command_mux_node's fixed inputs that became inputs from YAML (``inputs``, ``input.<name>.*``).
RENAMED_MUX = {
    "teleop_timeout": "input.teleop.timeout",
    "policy_timeout": "input.policy.timeout",
}
