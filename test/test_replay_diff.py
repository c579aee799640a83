"""replay-diff: identical models pass, one changed weight is caught with where and by how much, bad bags."""

from __future__ import annotations

import json

import pytest
import torch
from data_helpers import write_drive_bag

from lnn_control.cli import main
from lnn_control.data.bags import BagError
from lnn_control.driver import DriverConfig
from lnn_control.evaluate import load_models
from lnn_control.nn import checkpoint
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.replay_diff import diff_bag
from lnn_control.vision import PreprocessConfig

START = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    bags = [write_drive_bag(root / f"ep{i}", n=12, start_ns=START + i * 10**11) for i in range(2)]
    policy = Policy(PolicyConfig(core="cfc", preprocess=PreprocessConfig(56, 56), features=8))
    checkpoint.save(policy, root / "a")
    checkpoint.save(policy, root / "same")  # the same weights in another file
    with torch.no_grad():
        policy.encoder.reduce.bias[0] += 0.5
    checkpoint.save(policy, root / "changed")
    return root, bags


def run(capsys, *args):
    code = main(["replay-diff", "--threads", "1", *map(str, args)])
    return code, capsys.readouterr()


def test_identical_models_pass(setup, capsys):
    root, bags = setup
    code, out = run(capsys, "--model", root / "a", "--model", root / "same", "--bags", *bags)
    assert code == 0, out.err
    assert "same within the tolerance" in out.out


def test_a_changed_weight_is_caught_with_where_and_how_much(setup, capsys):
    root, bags = setup
    code, out = run(capsys, "--model", root / "a", "--model", root / "changed", "--bags", *bags, "--json")
    assert code == 1, out.err
    report = json.loads(out.out)
    assert report["differ"] is True
    fields = {(f["bag"].rsplit("/", 1)[-1], f["field"]): f for f in report["fields"]}
    raw = fields[("ep0", "raw.steering")]
    assert raw["frames"] == 12 and raw["differing"] > 0
    assert raw["first_index"] == 0 and raw["first_stamp_ns"] == START
    assert raw["max_abs"] > 1e-4 and 0 < raw["mean_abs"] <= raw["max_abs"]
    assert fields[("ep0", "dt")]["differing"] == 0  # same bag, same stamps: the timing agrees
    code, out = run(capsys, "--model", root / "a", "--model", root / "changed", "--bags", bags[0], "--tol", "1e3")
    assert code == 0  # within a huge tolerance
    assert "raw.steering" in out.out and "first frame" in out.out


def test_frames_differ_where_the_outputs_do(setup):
    root, bags = setup
    a, b = load_models([root / "a", root / "changed"])
    diffs = {d.field: d for d in diff_bag(bags[0], a, b, tol=0.0)}
    assert set(diffs) == {"steering", "velocity", "raw.steering", "raw.velocity", "dt"}
    assert diffs["raw.steering"].differing == 12


def test_bad_bag_is_skipped_unless_strict_and_nothing_to_compare_is_status_2(setup, capsys, tmp_path):
    root, bags = setup
    missing = tmp_path / "missing_bag"
    code, out = run(capsys, "--model", root / "a", "--model", root / "same", "--bags", bags[0], missing)
    assert code == 0 and "missing_bag" in out.err
    code, out = run(capsys, "--model", root / "a", "--model", root / "same", "--bags", bags[0], missing, "--strict")
    assert code == 2 and "missing_bag" in out.err
    code, out = run(capsys, "--model", root / "a", "--model", root / "same", "--bags", missing)
    assert code == 2
    code, out = run(capsys, "--model", root / "a", "--bags", bags[0])
    assert code == 2 and "exactly two" in out.err


def test_the_robots_yaml_applies_to_both_models(setup, capsys, tmp_path):
    root, bags = setup
    robot = tmp_path / "robot.yaml"
    robot.write_text("/**/drive_node:\n  ros__parameters:\n    crop_top: 4\n    max_dt: 0.03\n")
    sim = tmp_path / "more.yaml"
    sim.write_text("drive_node:\n  ros__parameters:\n    nominal_dt: 0.02\n")
    code, out = run(capsys, "--model", root / "a", "--model", root / "same", "--bags", bags[0], "--json",
                    "--driver-config", robot, "--driver-config", sim)
    assert code == 0, out.err
    assert "warning: A: driver settings differ" in out.err and "warning: B: driver settings differ" in out.err
    assert "crop_top 4 (the model's 0)" in out.err and "max_dt 0.03" in out.err and "nominal_dt 0.02" in out.err
    a, b = load_models([root / "a", root / "changed"])
    warnings: list[str] = []
    with pytest.raises(BagError, match=r"frame 0, model a: crop .* leaves nothing"):  # the crop reached the replay
        diff_bag(bags[0], a, b, driver_config=DriverConfig(crop_top=30), warn=warnings.append)  # frames: 24 high
    assert len(warnings) == 2 and warnings[0].startswith("a: ") and warnings[1].startswith("changed: ")
    assert "crop_top 30 (the model's 0)" in warnings[0]
