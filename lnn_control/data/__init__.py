"""Bags to training data, without ROS: read and write bags (``bags``), commands from messages (``commands``), frames
paired with the human command in force (``pairing``), the preprocessed cache and training windows (``dataset``, the
only module here that imports torch), and the Donkeycar tub importer (``tub``)."""
