"""ROS 2 nodes (rclpy): one module per node, each with one Node class, its parameters at the top and a tiny main.

Helper module without a node: ``driver_params`` (parameters shared by the driving nodes). The recorder's engine
(queue, writer thread, episodes) lives in :mod:`lnn_control.data.recording`, without rclpy.
"""
