"""``lnn-control recover``: bags whose writer died, repaired in place or salvaged into a copy, on real files.

The bags are written with lnn_control's writer, flushed (a chunk closed and on disk) every few messages; the size of
the file after each flush says where each chunk ends, so a bag cut at any byte offset must read back exactly the
messages of the chunks that are complete before the cut, byte for byte, by our reader and by rosbags'.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from data_helpers import ROS1_BAG, jazzy, write_drive_bag
from rosbags.rosbag2 import Reader

from lnn_control import cli
from lnn_control.data.bag_writer import BagFormat, BagWriter
from lnn_control.data.bags import Bag, BagError
from lnn_control.data.episode_bag import SIDECAR, EpisodeBag, TopicSpec, is_unfinished
from lnn_control.data.recovery import recover

PER_FLUSH = 3
STRING = "std_msgs/msg/String"


def _string(i: int) -> bytes:
    store = jazzy()
    return bytes(store.serialize_cdr(store.types[STRING](data=f"message {i} " + "x" * (i * 37 % 500)), STRING))


def _killed_bag(path: Path, flushes: int = 4, *, storage: str = "mcap") -> tuple[list[bytes], list[int]]:
    """A recorder bag whose writer died after ``flushes`` flushes of PER_FLUSH messages, plus a few unflushed ones.

    Returns the messages written (in order) and the size of the storage file after each flush."""
    bag = EpisodeBag(path, [TopicSpec("/a", STRING), TopicSpec("/b", STRING)], bag_format=BagFormat(storage=storage),
                     custom_data={"lnn_control.operator": "test"})  # fmt: skip
    bag.open()
    sent: list[bytes] = []
    sizes = []
    for i in range(flushes * PER_FLUSH + 2):
        data = _string(i)
        bag.write(i % 2, 1_000 + i, data)
        sent.append(data)
        if (i + 1) % PER_FLUSH == 0:
            bag.flush()
            sizes.append(next(path.glob("*.mcap" if storage == "mcap" else "*.db3")).stat().st_size)
    bag.abort(remove=False)  # SIGKILL: the files stay as they are
    return sent, sizes


def _read(path: Path) -> list[bytes]:
    with Bag(path) as bag:
        ours = [data for _, _, _, data in bag.raw()]
    with Reader(path) as reader:  # rosbags' own reader agrees
        theirs = [bytes(data) for _, _, data in reader.messages()]
    assert ours == theirs
    return ours


def _cut(src: Path, dst: Path, offset: int) -> Path:
    shutil.copytree(src, dst)
    mcap = next(dst.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:offset])
    return dst


def _recover_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = cli.main(["recover", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_killed_recorder_bag_is_repaired_in_place_with_its_metadata(tmp_path, capsys):
    sent, _ = _killed_bag(tmp_path / "ep")
    assert is_unfinished(tmp_path / "ep")
    code, out, err = _recover_cli(capsys, tmp_path / "ep")
    assert code == 0, err
    assert f"{tmp_path / 'ep'}: recovered, {4 * PER_FLUSH} messages" in out
    assert _read(tmp_path / "ep") == sent[: 4 * PER_FLUSH]  # the unflushed two are lost, the rest byte for byte
    assert not is_unfinished(tmp_path / "ep")
    with Bag(tmp_path / "ep") as bag:
        assert bag.topics["/a"].msgtype == STRING and bag.topics["/b"].count == 6
    with Reader(tmp_path / "ep") as reader:  # ros2 bag info's view: metadata.yaml
        assert reader.message_count == 4 * PER_FLUSH
        custom = reader.storage.metadata.custom
        assert custom["lnn_control.operator"] == "test" and "lnn_control.recovered" in custom
        assert all(c.digest.startswith("RIHS01_") for c in reader.connections)


@pytest.mark.parametrize("where", ["at_flush", "after_flush", "in_last_index", "mid_chunk"])
def test_a_bag_cut_at_any_offset_reads_up_to_its_last_complete_chunk(tmp_path, capsys, where):
    sent, sizes = _killed_bag(tmp_path / "full", flushes=5)
    for flush in (1, 3):  # cut around the end of the second and of the fourth chunk
        offset, kept = {
            "at_flush": (sizes[flush], flush),
            "after_flush": (sizes[flush] + 5, flush),  # the next chunk's record has only begun
            "in_last_index": (sizes[flush] - 3, flush),  # the chunk is whole, its last message index is not
            "mid_chunk": ((sizes[flush - 1] + sizes[flush]) // 2, flush - 1),
        }[where]
        bag = _cut(tmp_path / "full", tmp_path / f"cut_{flush}", offset)
        code, out, err = _recover_cli(capsys, bag)
        assert code == 0, err
        assert _read(bag) == sent[: (kept + 1) * PER_FLUSH], f"cut at byte {offset} ({where})"


def test_into_writes_a_salvaged_copy_and_leaves_the_bag_alone(tmp_path, capsys):
    sent, sizes = _killed_bag(tmp_path / "ep")
    mcap = next((tmp_path / "ep").glob("*.mcap"))
    before = mcap.read_bytes()
    code, out, err = _recover_cli(capsys, tmp_path / "ep", "--into", tmp_path / "saved")
    assert code == 0, err
    copy = tmp_path / "saved" / "ep"
    assert f"salvaged into {copy}" in out
    assert mcap.read_bytes() == before and is_unfinished(tmp_path / "ep")
    assert _read(copy) == sent[: 4 * PER_FLUSH]
    with Reader(copy) as reader:
        assert reader.storage.metadata.custom["lnn_control.operator"] == "test"
    assert not (copy / SIDECAR).exists()  # a finished bag
    code, _, err = _recover_cli(capsys, tmp_path / "ep", "--into", tmp_path / "saved")
    assert code == 1 and "saved/ep: exists already" in err


def test_a_bare_mcap_file_is_repaired_in_place(tmp_path):
    write_drive_bag(tmp_path / "drive", n=8)
    with Bag(tmp_path / "drive") as bag:
        original = list(bag.raw())
    data = next((tmp_path / "drive").glob("*.mcap")).read_bytes()
    bare = tmp_path / "bare.mcap"
    bare.write_bytes(data[: len(data) - 200])  # the summary is gone
    report = recover(bare, into=tmp_path / "out")  # a bare file's copy is a bag folder named after it
    with Bag(tmp_path / "out" / "bare") as bag:
        assert list(bag.raw()) == original and report.into == tmp_path / "out" / "bare"
    report = recover(bare)
    assert report.messages == 16 and report.cut_bytes > 0
    with Bag(bare) as bag:
        assert list(bag.raw()) == original


def test_sqlite3_keeps_every_committed_transaction_in_place_and_into(tmp_path, capsys):
    sent, _ = _killed_bag(tmp_path / "sq", storage="sqlite3")
    code, out, err = _recover_cli(capsys, tmp_path / "sq", "--into", tmp_path / "saved")
    assert code == 0, err
    assert _read(tmp_path / "saved" / "sq") == sent[: 4 * PER_FLUSH]
    assert is_unfinished(tmp_path / "sq")
    report = recover(tmp_path / "sq")
    assert report.messages == 4 * PER_FLUSH and _read(tmp_path / "sq") == sent[: 4 * PER_FLUSH]
    assert not list((tmp_path / "sq").glob("*-wal"))


def test_a_complete_storage_file_without_metadata_gets_its_metadata(tmp_path):
    bag = EpisodeBag(tmp_path / "ep", [TopicSpec("/a", STRING)], bag_format=BagFormat(fsync=False))
    bag.open()
    bag.write(0, 5, _string(1))
    bag.close()
    mcap = next((tmp_path / "ep").glob("*.mcap"))
    before = mcap.read_bytes()
    (tmp_path / "ep" / "metadata.yaml").unlink()  # killed between the storage file and metadata.yaml
    report = recover(tmp_path / "ep")
    assert report.already_complete and "storage file was complete" in str(report)
    assert mcap.read_bytes() == before and _read(tmp_path / "ep") == [_string(1)]


def test_bad_inputs_give_errors_that_name_the_bag(tmp_path, capsys):
    good = write_drive_bag(tmp_path / "good", n=2)
    (tmp_path / "empty.mcap").write_bytes(b"")
    (tmp_path / "magic.mcap").write_bytes(b"\x89MCA")
    (tmp_path / "folder").mkdir()
    (tmp_path / "ros1.bag").write_bytes(b"#ROSBAG V2.0\n" + bytes(100))
    _killed_bag(tmp_path / "header_only", flushes=0)  # no chunk reached the disk
    cases = {
        tmp_path / "nothere": "nothere: does not exist",
        tmp_path / "empty.mcap": "empty.mcap: file is empty (0 bytes)",
        tmp_path / "magic.mcap": "magic.mcap: cut short inside the MCAP magic",
        tmp_path / "folder": "folder: holds no .mcap or .db3 file",
        tmp_path / "ros1.bag": "ros1.bag: is a ROS 1 bag",
        tmp_path / "header_only": "header_only.mcap: no complete message",
        good: "good: is complete already",
    }
    for path, expected in cases.items():
        code, out, err = _recover_cli(capsys, path)
        assert code == 1 and expected in err and not out, (path, err)
    code, out, err = _recover_cli(capsys, *cases)  # one bad bag does not stop the others
    assert code == 1 and err.count("error: ") == len(cases)
    with pytest.raises(BagError, match="nothing to recover"):
        recover(tmp_path / "header_only", into=tmp_path / "x")
    assert not (tmp_path / "x" / "header_only").exists()


def test_a_real_ros1_bag_is_refused(tmp_path):
    if not ROS1_BAG.is_file():
        pytest.skip(f"{ROS1_BAG} is not there")
    with pytest.raises(BagError, match=r"tiny_svo.bag: is a ROS 1 bag"):
        recover(ROS1_BAG, into=tmp_path)


def test_the_writers_durable_flush_closes_the_chunk(tmp_path):
    with BagWriter(tmp_path / "w", typestore=jazzy()) as writer:
        writer.add_topic("/a", STRING)
        writer.write("/a", 1, _string(1))
        before = next((tmp_path / "w").glob("*.mcap")).stat().st_size
        writer.flush()
        after = next((tmp_path / "w").glob("*.mcap")).stat().st_size
        assert after > before and writer.flushes == 1
        writer.flush()  # nothing new: nothing written
        assert writer.flushes == 1


def test_recorder_node_recover_is_an_alias(tmp_path, capsys):
    pytest.importorskip("rclpy")
    from lnn_control.nodes.recorder import main

    sent, _ = _killed_bag(tmp_path / "ep")
    assert main(["recorder_node", "--recover", str(tmp_path / "ep")]) == 0
    assert _read(tmp_path / "ep") == sent[: 4 * PER_FLUSH]
    assert main(["recorder_node", "--recover", str(tmp_path / "nothere")]) == 1
    assert "nothere: does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_killed_split_and_compressed_bag_is_recovered_file_by_file(tmp_path, capsys, storage):
    import yaml
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    forever = QosTime(9223372036, 854775807)
    latched = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, forever,
                  forever, QosLiveliness.AUTOMATIC, forever, False)  # fmt: skip
    path = tmp_path / "ep"
    fmt = BagFormat(storage=storage, version=8, compression="zstd" if storage == "mcap" else "none",
                    max_bag_size=1500 if storage == "mcap" else 60_000)  # fmt: skip
    bag = EpisodeBag(path, [TopicSpec("/a", STRING), TopicSpec("/b", STRING, "latched")], bag_format=fmt,
                     custom_data={"lnn_control.operator": "test"}, offered_qos={1: [latched]})  # fmt: skip
    bag.open()
    sent = []
    for i in range(60):
        data = _string(i)
        bag.write(i % 2, 1_000 + i, data)
        sent.append(data)
        if i % 5 == 4:
            bag.flush()
    flushed = len(sent)
    bag.write(0, 2_000, _string(999))  # after the last flush: lost with the writer
    files = bag.files
    bag.abort(remove=False)  # SIGKILL
    assert len(files) > 2 and is_unfinished(path)
    code, out, err = _recover_cli(capsys, path)
    assert code == 0, err
    got = _read(path)  # ours and rosbags' agree
    assert got == sent[:flushed]
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    # every file, in the order written (one the writer had just begun, with nothing complete in it, is left out)
    kept = info["relative_file_paths"]
    assert info["version"] == 8 and kept == files[: len(kept)] and len(kept) >= len(files) - 1 and len(kept) > 1
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in info["topics_with_message_count"]}
    assert yaml.safe_load(topics["/b"]["offered_qos_profiles"])[0]["durability"] == 1  # from the sidecar, v8 form
    with Bag(path) as reopened:
        assert reopened.topics["/b"].offered_qos == (latched,)
