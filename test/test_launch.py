"""depth.launch.py under launch_testing: a frame on the remapped camera topic gives depth on /camera/depth/image.

Needs a ROS 2 install with this package built (colcon), since the launch file finds the node and its
parameters through the ament index. Skipped, with the reason, where launch_testing is not installed (it
is not on PyPI).
"""
import os
import time
import unittest

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installed (ROS 2 only)")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    launch_file = os.path.join(get_package_share_directory("spidepth_ros"), "launch", "depth.launch.py")
    include = IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file),
                                       launch_arguments={"camera": "/camera", "backend": "torch"}.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestDepthFromTheCameraTopic(unittest.TestCase):
    def test_a_frame_gives_depth(self):
        rclpy.init()
        node = rclpy.create_node("launch_probe")
        try:
            camera = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
            got: list = []
            node.create_subscription(Image, "/camera/depth/image", got.append, 10)
            rgb = np.random.default_rng(0).integers(0, 255, (96, 320, 3), dtype=np.uint8)
            msg = Image(height=96, width=320, encoding="rgb8", step=960, data=rgb.tobytes())
            end = time.monotonic() + 120  # first start loads the model
            while time.monotonic() < end and not got:
                camera.publish(msg)
                rclpy.spin_once(node, timeout_sec=0.2)
            self.assertTrue(got, "no depth on /camera/depth/image")
            self.assertEqual(got[0].encoding, "32FC1")
        finally:
            node.destroy_node()
            rclpy.shutdown()
