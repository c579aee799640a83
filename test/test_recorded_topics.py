"""The recorder's ``topics`` entries, ``TOPIC TYPE [QOS] [RATE]``, parsed without ROS."""

from __future__ import annotations

import pytest

from lnn_control.data.episode_bag import TopicSpec, parse_topics


def test_entries_with_defaults_and_either_optional_field():
    specs, deprecated = parse_topics([
        "camera/image_raw sensor_msgs/Image 30",
        "teleop/cmd_vel geometry_msgs/msg/TwistStamped",
        "mux/active_source std_msgs/msg/String latched",
        "camera/image_raw/compressed sensor_msgs/msg/CompressedImage reliable 15.5",
    ])  # fmt: skip
    assert not deprecated
    assert specs == [
        TopicSpec("camera/image_raw", "sensor_msgs/msg/Image", "sensor", 30.0),  # images: best effort by default
        TopicSpec("teleop/cmd_vel", "geometry_msgs/msg/TwistStamped", "reliable", 0.0),
        TopicSpec("mux/active_source", "std_msgs/msg/String", "latched", 0.0),
        TopicSpec("camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", "reliable", 15.5),
    ]


def test_an_entry_without_type_takes_it_from_the_graph():
    specs, _ = parse_topics(["teleop/cmd_vel", "mux/active_source latched", "camera/image_raw 30", "x sensor 5"])
    assert specs == [
        TopicSpec("teleop/cmd_vel", "", "", 0.0),  # type and QoS: from the publishers, when one appears
        TopicSpec("mux/active_source", "", "latched", 0.0),
        TopicSpec("camera/image_raw", "", "", 30.0),
        TopicSpec("x", "", "sensor", 5.0),
    ]


@pytest.mark.parametrize(
    ("topics", "problem"),
    [
        ([], "'topics' is empty"),
        (["a std_msgs/String", "  "], "entry 2 ('  '): empty"),
        (["a reliable 5 extra"], "4 fields"),
        (["a std_msgs/String reliable 5 extra"], "5 fields"),
        (["a not-a-type"], "TYPE 'not-a-type' is not a message type"),
        (["a std_msgs/String fast"], "'fast' is neither a QOS"),
        (["a std_msgs/String -3"], "'-3' is neither a QOS"),
        (["a std_msgs/String nan"], "'nan' is neither a QOS"),
        (["a std_msgs/String sensor reliable"], "QOS given twice"),
        (["a std_msgs/String 5 6"], "RATE given twice"),
        (["a std_msgs/String", "a std_msgs/Bool"], "entries 1 and 2: a twice"),
    ],
)
def test_bad_entries_name_the_entry_and_the_field(topics, problem):
    with pytest.raises(ValueError, match="parameter 'topics'") as raised:
        parse_topics(topics)
    assert problem in str(raised.value)


def test_the_old_parallel_lists_still_read_and_say_so():
    specs, deprecated = parse_topics(["a", "b"], ["std_msgs/String", "sensor_msgs/Image"], [], [0.0, 30.0])
    assert deprecated
    assert specs == [TopicSpec("a", "std_msgs/msg/String", "reliable", 0.0),
                     TopicSpec("b", "sensor_msgs/msg/Image", "sensor", 30.0)]  # fmt: skip
    with pytest.raises(ValueError, match="'types' .* has 1 entries but 'topics' has 2"):
        parse_topics(["a", "b"], ["std_msgs/String"])
    with pytest.raises(ValueError, match="use one form"):
        parse_topics(["a std_msgs/String", "b"], ["std_msgs/String", "std_msgs/String"])
