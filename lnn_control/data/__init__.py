"""Bags to training data, without ROS: read bags (``bags``), write them (``bag_writer``), parse and repair MCAP
(``mcap``, ``recovery``), the recorder's engine (``recording``, ``episode_bag``), message definitions
(``message_types``), commands from messages (``commands``), frames paired with the human command in force
(``pairing``), the preprocessed cache and training windows (``dataset``, the only module here that imports torch),
and the Donkeycar tub importer (``tub``)."""
