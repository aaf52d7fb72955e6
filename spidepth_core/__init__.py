"""spidepth_core: SPIdepth self-supervised monocular depth, free of ROS."""
__version__ = "0.1.0"
