"""ROS 2 adapters around spidepth_core: the depth node and message conversions."""
