"""Closed-loop episodes, run_episodes, the report folder and the sim-eval verb (real simulator, short episodes)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")

from lnn_control.bringup import merge, node_params, read_params  # noqa: E402
from lnn_control.cli import main  # noqa: E402
from lnn_control.command import car  # noqa: E402
from lnn_control.driver import Driver, DriverConfig, FieldLimits, load_driver_config  # noqa: E402
from lnn_control.nn import checkpoint  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.paths import config_file, model_file  # noqa: E402
from lnn_control.report.episodes import write_report  # noqa: E402
from lnn_control.sim.carracing import CarRacingSim  # noqa: E402
from lnn_control.sim.closed_loop import (  # noqa: E402
    ConstantController,
    Controller,
    model_controller_factory,
    run_episode,
    run_episodes,
    sim_driver_config,
)
from lnn_control.sim.expert import ExpertController  # noqa: E402
from lnn_control.sim.perturb import PerturbConfig  # noqa: E402
from lnn_control.timing import TimingConfig  # noqa: E402
from lnn_control.vision import PreprocessConfig  # noqa: E402

pytestmark = [pytest.mark.sim]


class Activity(ConstantController):
    """A constant controller with a per-step activity vector, like a learned policy's neurons."""

    def observe(self, frame, stamp_ns):
        self.last_activity = np.sin(np.arange(8) + stamp_ns * 1e-9)
        return super().observe(frame, stamp_ns)


def test_run_episode_result():
    with CarRacingSim() as sim:
        ctl = Activity(car(0.0, 12.0))
        assert isinstance(ctl, Controller)
        res = run_episode(sim, ctl, 1, max_steps=80, record_frames=True)
    assert res.steps == 80 and res.observed == 80 and not res.terminated
    assert res.sim_time_s == pytest.approx(1.6) and res.reward == pytest.approx(float(res.series["total_reward"][-1]))
    assert res.frames.shape == (80, 96, 96, 3) and res.activity.shape == (80, 8)
    assert set(res.series) >= {"t_s", "steering", "velocity", "speed", "on_track", "observed", "offset"}
    assert res.series["t_s"][1] == pytest.approx(0.02) and np.all(res.series["velocity"] == np.float32(12.0))
    assert res.series["speed"][-1] == pytest.approx(12.0, abs=2.0)
    assert res.off_track_s == 0.0 and res.tiles_visited > 0


def test_off_track_time_counts():
    with CarRacingSim() as sim:  # full left at speed: off the road within a second or two
        res = run_episode(sim, ConstantController(car(1.0, 25.0)), 1, max_steps=150)
    assert res.off_track_s > 0.5
    assert res.off_track_s == pytest.approx((~res.series["on_track"]).sum() * 0.02)


def test_report_folder(tmp_path):
    results = run_episodes(
        CarRacingSim,
        ExpertController,
        seeds=[4, 5],
        perturb=PerturbConfig(winter=True),
        max_steps=60,
        progress=False,
    )
    assert [r.seed for r in results] == [4, 5] and results[0].frames is not None and results[1].frames is None
    results[1].activity = np.random.default_rng(0).normal(size=(results[1].steps, 5)).astype(np.float32)
    paths = write_report(tmp_path / "rep", results, {"controller": "expert"})
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert names == {"episodes.csv", "summary.json", "timeseries.png", "episode_4.gif", "activity.png"}
    with open(paths["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["seed"]) for r in rows] == [4, 5]
    assert float(rows[0]["reward"]) == pytest.approx(results[0].reward, abs=1e-3)
    summary = json.loads(paths["summary"].read_text())
    assert summary["meta"]["controller"] == "expert" and summary["episodes"] == 2
    assert summary["reward_mean"] == pytest.approx(np.mean([r.reward for r in results]))
    for key in ("reward_std", "laps_total", "off_track_s_mean"):
        assert key in summary
    from PIL import Image

    gif = Image.open(paths["gif"])
    assert gif.n_frames == 20 and gif.size == (192, 192 + 46)  # 60 steps / stride 3, 2x upscaled + overlay strip


def test_sim_eval_verb(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(
        [
            "sim-eval",
            "--baseline",
            "expert",
            "--episodes",
            "2",
            "--seed",
            "7",
            "--max-steps",
            "40",
            "--perturb",
            "noise=0.05",
            "--perturb",
            "drop=0.2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["perturb"] == "noise=0.05,drop=0.2" and summary["meta"]["seeds"] == [7, 8]
    assert (out / "episode_7.gif").is_file() and (out / "timeseries.png").is_file()
    assert "reward" in capsys.readouterr().out


def test_sim_eval_errors(tmp_path):
    with pytest.raises(SystemExit, match="unknown perturbation"):
        main(["sim-eval", "--baseline", "expert", "--perturb", "fog=2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"missing \S*m\.json and \S*m\.safetensors"):
        main(["sim-eval", "--model", str(tmp_path / "m.safetensors"), "--out", str(tmp_path)])


def test_sim_eval_model_drives_through_the_driver(tmp_path):
    """sim-eval --model runs the checkpoint through Driver.observe: the same commands as a Driver fed the frames."""
    policy = Policy(PolicyConfig(preprocess=PreprocessConfig(84, 96, crop_bottom=12), dt_unit_s=0.02, seed=4))
    with torch.no_grad():
        policy.target_mean.copy_(torch.tensor([0.0, 20.0]))  # drive forward at about 20 m/s
    checkpoint.save(policy, tmp_path / "m")
    out = tmp_path / "eval"
    assert main(["sim-eval", "--model", str(tmp_path / "m"), "--episodes", "1", "--seed", "3", "--max-steps", "30",
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["model"].endswith("m") and (out / "activity.png").is_file()

    # The same episode by hand: the sim's frames and stamps into a Driver built as sim-eval builds it.
    (result,) = run_episodes(CarRacingSim, model_controller_factory(tmp_path / "m"), [3], max_steps=30, progress=False)
    driver = Driver(checkpoint.load(tmp_path / "m"), load_driver_config(config_file("drive.yaml"),
                                                                        config_file("sim.yaml")))
    with CarRacingSim() as sim:
        obs = sim.reset(3)
        commands = []
        for _ in range(30):
            command = driver.observe(obs.frame, obs.stamp_ns)
            commands.append(command)
            obs = sim.step(command)
    assert np.allclose(result.series["cmd_steering"], [c.steering for c in commands], atol=1e-6)
    assert np.allclose(result.series["cmd_velocity"], [c.velocity for c in commands], atol=1e-5)
    assert result.reward == pytest.approx(obs.truth.total_reward, abs=1e-9)
    assert driver.limits[1].max == 100.0 and commands[-1].velocity > 5.0


def test_controller_command_types():
    assert ConstantController(car(0.1, 2.0)).observe(np.zeros((2, 2, 3), np.uint8), 5) == car(0.1, 2.0, 5)


def test_sim_eval_drives_as_the_sim_drive_node_and_the_shipped_model_as_before():
    """sim-eval's Driver settings are the drive_node's in `up sim-drive` (drive.yaml, then sim.yaml); for the shipped
    model they resolve to exactly the values sim-eval used before the timing moved into the checkpoint, so its
    rewards stay the same, and they are the model's own (its checkpoint carries the training's timing): no warning."""
    params = node_params(merge(read_params(config_file("drive.yaml")), read_params(config_file("sim.yaml"))),
                         "drive_node")
    config = sim_driver_config()
    fields = DriverConfig.__dataclass_fields__
    limits = {k.removeprefix("limits."): v for k, v in params.items() if k.startswith("limits.")}
    assert config == DriverConfig(**{k: v for k, v in params.items() if k in fields}, limits=limits)
    shipped = checkpoint.load(model_file("ltc_ncp_carracing"))
    warnings: list[str] = []
    driver = Driver(shipped, config, warn=warnings.append)
    assert driver.timing == TimingConfig(nominal_dt=0.02, min_dt=0.001, max_dt=0.5, reset_gap=1.0)
    assert driver.limits == (FieldLimits(-1.0, 1.0, 0.0), FieldLimits(0.0, 100.0, 0.0))  # as max_speed 100 was
    assert driver.preprocess == shipped.config.preprocess
    assert warnings == []
