"""lnn_control: camera-to-command control with liquid neural networks.

Everything outside ``lnn_control.nodes``, ``lnn_control.ros`` and ``lnn_control.bringup`` runs without ROS.
"""

__version__ = "0.1.0"
