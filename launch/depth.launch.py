"""ros2 launch spidepth_ros depth.launch.py [camera:=/camera] [model:=...] [backend:=...] [rviz:=true]"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("spidepth_ros")
    camera = LaunchConfiguration("camera")
    args = [
        DeclareLaunchArgument("camera", default_value="/camera", description="camera namespace"),
        DeclareLaunchArgument("image", default_value="image_raw", description="image topic in the camera namespace"),
        DeclareLaunchArgument("camera_info", default_value="camera_info"),
        DeclareLaunchArgument("model", default_value="", description="model file; empty = bundled model"),
        DeclareLaunchArgument("backend", default_value="auto", description="auto|tensorrt|onnxruntime|torch"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "depth.yaml")),
        DeclareLaunchArgument("rviz", default_value="false"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
    ]
    node = Node(
        package="spidepth_ros", executable="depth_node", name="depth_node", output="screen",
        parameters=[LaunchConfiguration("params_file"),
                    {"model_path": LaunchConfiguration("model"), "backend": LaunchConfiguration("backend"),
                     "use_sim_time": LaunchConfiguration("use_sim_time")}],
        remappings=[
            ("image", PathJoinSubstitution([camera, LaunchConfiguration("image")])),
            ("image/compressed", PathJoinSubstitution([camera, LaunchConfiguration("image"), "compressed"])),
            ("camera_info", PathJoinSubstitution([camera, LaunchConfiguration("camera_info")])),
            ("depth", PathJoinSubstitution([camera, "depth", "image"])),
            ("depth/camera_info", PathJoinSubstitution([camera, "depth", "camera_info"])),
            ("depth/colored", PathJoinSubstitution([camera, "depth", "colored"])),
            ("depth/uncertainty", PathJoinSubstitution([camera, "depth", "uncertainty"])),
            ("points", PathJoinSubstitution([camera, "depth", "points"])),
        ],
    )
    rviz = Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                arguments=["-d", os.path.join(share, "config", "depth.rviz")],
                parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
                condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription(args + [node, rviz])
