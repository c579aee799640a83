"""Offline replay evaluation: a bag trains and evaluates end to end, the replay equals Driver.observe by hand, the
baseline row, saliency, bad bags, the drive.yaml driver settings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from data_helpers import IMAGE_TOPIC, write_drive_bag
from test_train import START, tiny_config

from lnn_control import evaluate as E
from lnn_control import train as T
from lnn_control.cli import main
from lnn_control.data.bags import Bag, BagError
from lnn_control.data.pairing import PairingConfig, pair_frames
from lnn_control.driver import Driver, DriverConfig, load_driver_config
from lnn_control.nn import checkpoint
from lnn_control.nn.encoder import ConvHead
from lnn_control.report.media import visual_backprop
from lnn_control.vision import PreprocessConfig, decode_msg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two bags, a cfc and an lstm trained on them for a few steps; the run folder of the cfc."""
    root = tmp_path_factory.mktemp("eval")
    bags = [write_drive_bag(root / f"ep{i}", n=24, start_ns=START + i * 10**11) for i in range(2)]
    cache = root / "cache"
    runs = {}
    for core in ("cfc", "lstm"):
        config = tiny_config(cache, model={"core": core}, epochs=1, tensorboard=core == "cfc")
        T.train(config, bags[:1], root / core, val_bags=bags[1:])
        runs[core] = root / core
    return bags, runs


def test_a_bag_trains_and_evaluates_end_to_end(trained, tmp_path, capsys):
    bags, runs = trained
    run = runs["cfc"]
    for name in ("best.safetensors", "best.json", "last.json", "state.safetensors", "state.json", "config.yaml",
                 "metrics.csv", "run.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())  # TensorBoard event file
    # targets normalised with the training bag's statistics
    with Bag(bags[0]) as bag:
        human = np.array([(p.command.steering, p.command.velocity) for p in pair_frames(bag, decode=False)])
    policy = checkpoint.load(run / "best")
    np.testing.assert_allclose(policy.config.target_mean, human.mean(0), rtol=1e-5)
    np.testing.assert_allclose(policy.config.target_std, human.std(0), rtol=1e-5)

    out = tmp_path / "report"
    code = main(["eval", "--model", str(run / "best"), "--model", str(runs["lstm"] / "best"), "--bags",
                 *map(str, bags), "--out", str(out), "--saliency-frames", "6", "--saliency-bags", "2", "--no-progress",
                 "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "baseline (training mean)" in printed and "steering MAE" in printed  # both share the training bag
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for bag in ("ep0", "ep1"):
        assert f"predictions/{bag}.csv" in files and f"plots/{bag}_outputs.png" in files
        for model in ("cfc_best", "lstm_best"):
            assert f"plots/{bag}_{model}_activity.png" in files
            assert f"saliency/{bag}_{model}.gif" in files
    assert {"metrics.json", "metrics.csv", "summary.md"} <= files
    document = json.loads((out / "metrics.json").read_text())
    assert set(document["models"]) == {"cfc/best", "lstm/best"}
    assert document["saliency"].startswith("VisualBackProp")
    models = {(r["model"], r["bag"], r["output"]) for r in document["metrics"]}
    assert ("cfc/best", "all", "steering") in models and ("lstm/best", "ep1", "velocity") in models
    assert any(m.startswith("baseline") for m, _, _ in models)
    summary = (out / "summary.md").read_text()
    assert "| cfc/best |" in summary and "| lstm/best |" in summary
    gif = out / "saliency" / "ep0_cfc_best.gif"
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames == 6  # 24 frames, every 4th


def test_eval_mae_equals_a_hand_computation_from_driver_observe(trained, tmp_path):
    bags, runs = trained
    # no command after frame 4 until frame 15: frames 10..14 are more than 0.25 s past it, replayed (the state
    # moves on) but not scored
    bag = write_drive_bag(tmp_path / "gaps", n=20, command_indices=[i for i in range(20) if not 5 <= i <= 14])
    model = E.load_models([runs["cfc"] / "best"])[0]
    result = E.evaluate_bags([model], [bag], tmp_path / "report", plots=False)
    row = {(r["model"], r["output"]): r for r in result.rows}

    driver = Driver(checkpoint.load(runs["cfc"] / "best"), DriverConfig())
    human = {p.index: p.command for p in pair_frames(bag, PairingConfig(), decode=False)}
    errors = {"steering": [], "velocity": []}
    with Bag(bag) as opened:
        for i, rec in enumerate(opened.records([IMAGE_TOPIC])):
            command = driver.observe(decode_msg(rec.msg), rec.header_ns)
            if i in human:
                errors["steering"].append(command.steering - human[i].steering)
                errors["velocity"].append(command.velocity - human[i].velocity)
    for output, err in errors.items():
        got = row[(model.name, output)]
        assert got["frames"] == len(human) == 15
        assert got["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-9, abs=1e-12)
        assert got["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(err))), rel=1e-9, abs=1e-12)
    replay = result.replays[0]
    assert len(replay.stamps) == 20 and int(replay.scored.sum()) == 15
    base = row[("baseline (training mean)", "steering")]
    truth = np.array([c.steering for c in human.values()])
    assert base["mae"] == pytest.approx(np.mean(np.abs(truth - model.mean[0])), rel=1e-9)


def test_one_bad_bag_is_reported_and_skipped_unless_strict(trained, tmp_path, capsys):
    bags, runs = trained
    empty = tmp_path / "empty.db3"
    empty.write_bytes(b"")
    args = ["eval", "--model", str(runs["cfc"] / "best"), "--bags", str(bags[0]), str(empty), "--no-plots",
            "--no-progress", "--out"]
    assert main(args + [str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "empty.db3" in captured.err and "skipped 1 bag" in captured.out
    document = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert document["skipped"][0]["bag"] == str(empty) and len(document["bags"]) == 1
    assert main(args + [str(tmp_path / "b"), "--strict"]) == 1
    assert "empty.db3" in capsys.readouterr().err
    with pytest.raises(BagError, match="no bag could be replayed"):
        E.evaluate_bags(E.load_models([runs["cfc"] / "best"]), [empty], tmp_path / "c")


def test_a_crop_that_does_not_fit_the_bag_names_the_bag_and_model(trained, tmp_path):
    bags, runs = trained
    policy = checkpoint.load(runs["cfc"] / "best")
    policy.config.preprocess = PreprocessConfig(56, 56, crop_top=30)  # the bag's frames are 24 pixels high
    checkpoint.save(policy, tmp_path / "cropped")
    with pytest.raises(BagError, match=r"ep0.*frame 0, model cropped: crop .* leaves nothing"):
        E.evaluate_bags(E.load_models([tmp_path / "cropped"]), [bags[0]], tmp_path / "report", strict=True, plots=False)


def test_driver_settings_come_from_the_nodes_parameter_file(tmp_path):
    path = tmp_path / "drive.yaml"
    path.write_text("/**/drive_node:\n  ros__parameters:\n    limits:\n      velocity: {max: 0.7}\n    reset_gap: 2.5\n"
                    "    crop_top: 3\n    model: x\n")
    config = load_driver_config(path)
    assert config == DriverConfig(limits={"velocity.max": 0.7}, reset_gap=2.5, crop_top=3)  # node names, no table
    over = tmp_path / "over.yaml"  # files layer as `up` layers them, later over earlier
    over.write_text("drive_node:\n  ros__parameters:\n    limits.velocity.max: 1\n/**:\n  ros__parameters:\n"
                    "    limits:\n      steering:\n        max: 0.5\n")
    assert load_driver_config(path, over) == DriverConfig(
        limits={"velocity.max": 1.0, "steering.max": 0.5}, reset_gap=2.5, crop_top=3)
    split = tmp_path / "split.yaml"  # no drive_node: the split pair's
    split.write_text("perception_node:\n  ros__parameters:\n    crop_left: 2\n"
                     "policy_node:\n  ros__parameters:\n    nominal_dt: 0.02\n")
    assert load_driver_config(split) == DriverConfig(crop_left=2, nominal_dt=0.02)
    assert load_driver_config() == DriverConfig()
    path.write_text("limits:\n  max_steering: 0.5\n")  # the old format is refused, pointing at the nodes' file
    with pytest.raises(ValueError, match="'limits' has no 'ros__parameters:'.*config/drive.yaml"):
        load_driver_config(path)
    path.write_text("drive_node:\n  ros__parameters:\n    reset_gap: 5000.0\n")  # the node's own range
    with pytest.raises(ValueError, match="drive.yaml: parameter 'reset_gap' = 5000.0 is above its maximum"):
        load_driver_config(path)
    path.write_text("drive_node:\n  ros__parameters:\n    max_speed: 1.0\n")  # renamed: said so, not ignored
    with pytest.raises(ValueError, match="max_speed is now limits.velocity.max"):
        load_driver_config(path)


def test_eval_with_a_robots_yaml_crops_and_times_as_the_robot(trained, tmp_path, capsys):
    bags, runs = trained
    path = tmp_path / "robot.yaml"
    path.write_text("drive_node:\n  ros__parameters:\n    crop_top: 4\n    crop_right: 3\n    reset_gap: 0.4\n")
    config = load_driver_config(path)
    bag = write_drive_bag(tmp_path / "gap", n=12, log_of=lambda i: START + i * 50_000_000 + (i >= 6) * 500_000_000)
    out = tmp_path / "report"
    assert main(["eval", "--model", str(runs["cfc"] / "best"), "--bags", str(bag), "--driver-config", str(path),
                 "--no-plots", "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: best: driver settings differ" in err and "crop_top 4 (the model's 0)" in err
    document = json.loads((out / "metrics.json").read_text())
    assert document["models"]["best"]["preprocess"]["crop_top"] == 4 and document["driver_config"]["crop_right"] == 3
    assert document["models"]["best"]["timing"]["reset_gap"] == 0.4
    # by hand: a Driver with the robot's settings, and one without them, on the same frames
    model = E.load_models([runs["cfc"] / "best"])[0]
    replay = E.replay_bag(bag, [model], driver_config=config)
    robot, own = Driver(model.policy, config), Driver(model.policy)
    with Bag(bag) as opened:
        for i, rec in enumerate(opened.records([IMAGE_TOPIC])):
            command = robot.observe(decode_msg(rec.msg), rec.header_ns)
            own.observe(decode_msg(rec.msg), rec.header_ns)
            assert tuple(replay.predictions["best"][i]) == (command.steering, command.velocity)
            assert replay.dt["best"][i] == robot.last.dt_s
    assert robot.preprocess.crop_top == 4 and own.preprocess.crop_top == 0
    assert any("reset_gap 0.4" in e for e in replay.events["best"])  # the 0.55 s gap resets as on the robot


def test_visual_backprop_points_at_the_pixels_that_drive_the_features():
    torch.manual_seed(0)
    head = ConvHead(56, 56, 8)
    with torch.no_grad():  # every conv sums its inputs: activity grows where the frame is bright
        for m in head.convs:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.zero_()
    frames = torch.zeros(1, 56, 56, 3, dtype=torch.uint8)
    frames[0, 30:50, 5:25] = 255  # a bright square, lower left
    mask = visual_backprop(head, frames)[0]
    assert mask.shape == (56, 56) and float(mask.min()) == 0.0 and float(mask.max()) == 1.0
    assert mask[30:50, 5:25].mean() > 4 * mask[0:20, 30:56].mean()


def test_model_names_are_short_and_unique():
    assert E.model_names(["runs/a/best", "runs/b/last"]) == ["best", "last"]
    assert E.model_names(["runs/a/best", "runs/b/best.json"]) == ["a/best", "b/best"]
    assert E.model_names(["a/best", "a/best"]) == ["a/best", "a/best#2"]
