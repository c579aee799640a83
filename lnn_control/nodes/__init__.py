"""ROS 2 nodes (rclpy): one module per node, each with one Node class, its parameters at the top and a tiny main.

Helper modules without a node: ``driver_params`` (parameters shared by the driving nodes) and ``bag_recording``
(the recorder's queue, writer thread and bag recovery; no rclpy import, so tools can recover bags without ROS).
"""
