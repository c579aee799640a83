"""What only the ROS nodes need: QoS profiles, stamp conversion, message <-> numpy, DDS environment."""
