"""ROS 2 nodes (rclpy): one module per node, each with one Node class, its parameters at the top and a tiny main."""
