"""Training: config and overrides, augmentation, the weighted loss, exact resume, early stopping, bad bags,
torch.distributed (gloo, world size 1), bf16 autocast. Tiny models on 56x56 frames keep it quick."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from data_helpers import write_drive_bag
from safetensors.torch import load_file

from lnn_control import train as T
from lnn_control.cli import main
from lnn_control.driver import Driver
from lnn_control.nn import checkpoint
from lnn_control.paths import config_file
from lnn_control.timing import TimingConfig

START = 1_700_000_000_000_000_000

TINY_MODEL = {
    "core": "cfc",
    "features": 8,
    "inter_neurons": 5,
    "command_neurons": 3,
    "sensory_fanout": 3,
    "inter_fanout": 2,
    "recurrent_command_synapses": 2,
    "motor_fanin": 3,
}


def tiny_config(cache: Path, model: dict | None = None, **training) -> T.RunConfig:
    """56x56 frames (the conv head's smallest size is 53), 4-frame windows, batches of 4."""
    return T.RunConfig.from_dict(
        {
            "preprocess": {"height": 56, "width": 56},
            "model": {**TINY_MODEL, **(model or {})},
            "dataset": {"window": 4, "stride": 4},
            "training": {
                "epochs": 2,
                "batch_size": 4,
                "threads": 1,
                "lr": 0.01,
                "progress": False,
                "tensorboard": False,
                "cache_dir": str(cache),
                **training,
            },
            "augment": {"noise_std": 0.05, "max_shift": 2},
        }
    )


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("bags")
    return [write_drive_bag(root / f"ep{i}", n=24, start_ns=START + i * 10**11) for i in range(3)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def weights(stem: Path) -> dict[str, torch.Tensor]:
    return load_file(str(stem) + ".safetensors")


# -- configuration ----------------------------------------------------------------------------------------------


def test_package_config_loads_and_overrides_apply():
    config = T.load_config(None, ["model.core=cfc", "training.lr=0.01", "dataset.pairing.tolerance_s=0.1"])
    assert config.policy_config().core == "cfc"
    assert config.training.lr == 0.01 and config.dataset.pairing.tolerance_s == 0.1
    assert config.dataset.preprocess == config.preprocess  # one preprocessing for the cache and the model
    assert config.dataset.timing == config.timing == config.policy_config().timing  # one timing for windows and model
    assert config.timing == TimingConfig()  # config/train.yaml lists the defaults (those of older checkpoints)
    assert T.RunConfig.from_dict(config.to_dict()) == config
    carracing = T.load_config(config_file("train_carracing.yaml"), ["timing.reset_gap=0.8"])
    assert carracing.timing == TimingConfig(nominal_dt=0.02, reset_gap=0.8) == carracing.dataset.timing


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.epoch=3"], "unknown training option(s): epoch"),
        (["model.core=gru"], "core must be one of"),
        (["epochs=3"], "must start with a section"),
        (["training.schedule=step"], "training.schedule must be one of"),
        (["model.target_mean=[0, 0]"], "set by the run"),
        (["model.timing={nominal_dt: 0.02}"], "model.timing is set by the run"),
        (["dataset.timing={nominal_dt: 0.02}"], "use the top-level timing section"),
        (["dataset.max_gap_s=0.5"], "dataset.max_gap_s -> timing.reset_gap"),
        (["timing.max_gap=0.5"], "unknown timing field(s): max_gap"),
        (["timing.min_dt=0.9"], "min_dt <= nominal_dt <= max_dt"),
    ],
)
def test_bad_config_is_named(overrides, message):
    with pytest.raises(T.TrainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        T.load_config(None, overrides)


# -- augmentation and loss --------------------------------------------------------------------------------------------


def test_augmentation_keeps_dtype_and_shape_is_seeded_and_consistent_within_a_window():
    rng = np.random.default_rng(0)
    one = torch.from_numpy(rng.integers(0, 256, size=(3, 1, 20, 24, 3), dtype=np.uint8))
    frames = one.expand(3, 5, 20, 24, 3).contiguous()  # every window: one frame repeated 5 times
    config = T.AugmentConfig(noise_std=0.0, shadow_probability=1.0)

    def run(seed, cfg=config):
        return T.augment_windows(frames, cfg, torch.Generator().manual_seed(seed))

    out = run(1)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert torch.equal(out, run(1))
    assert not torch.equal(out, run(2))
    assert not torch.equal(out, frames)
    for t in range(1, 5):  # the same draw for every frame of a window
        assert torch.equal(out[:, t], out[:, 0])
    assert not torch.equal(out[0, 0], out[1, 0])  # windows draw independently
    noisy = run(1, T.AugmentConfig(noise_std=0.1))
    assert not torch.equal(noisy[:, 1], noisy[:, 0])  # noise is per pixel, per frame
    assert T.augment_windows(frames, T.AugmentConfig(enabled=False), torch.Generator()) is frames
    with pytest.raises(ValueError, match="uint8"):
        T.augment_windows(frames.float(), config, torch.Generator())


def test_hue_rotation_turns_colours_about_the_grey_axis_and_keeps_greys():
    third = T.hue_rotations(torch.tensor([2 * math.pi / 3, 0.0]))
    red, grey = torch.tensor([200.0, 0.0, 0.0]), torch.tensor([90.0, 90.0, 90.0])
    assert torch.allclose(third[0] @ red, torch.tensor([0.0, 200.0, 0.0]), atol=1e-4)  # a third of a turn: red -> green
    assert torch.allclose(third[0] @ grey, grey, atol=1e-4) and torch.allclose(third[1], torch.eye(3))
    frames = torch.zeros(64, 2, 4, 4, 3, dtype=torch.uint8)
    frames[..., 0], frames[:, :, 0, 0] = 200, 120  # red windows, one grey pixel in each
    cfg = T.AugmentConfig(brightness=0, contrast=0, shadow_probability=0, noise_std=0, max_shift=0, hue=0.5)
    out = T.augment_windows(frames, cfg, torch.Generator().manual_seed(0)).int()
    assert torch.equal(out[:, :, 0, 0], torch.full_like(out[:, :, 0, 0], 120))  # greys stay grey
    assert (out[:, :, 1:, 1:, 1] > 100).any() and (out[:, :, 1:, 1:, 2] > 100).any()  # some windows turn green, blue
    assert torch.equal(out[:, 0], out[:, 1])  # one draw per window
    with pytest.raises(ValueError, match="augment.hue"):
        T.AugmentConfig(hue=0.6)


def test_colour_shear_keeps_grey_and_the_anchor_and_moves_other_colours_against_them():
    shears = T.colour_shears(torch.tensor([[0.0, 1.5], [0.7, -1.5], [0.0, 0.0]]), (1.0, 0.0, 0.0))
    assert torch.allclose(torch.linalg.det(shears), torch.ones(3), atol=1e-5)  # always invertible
    assert torch.allclose(shears[2], torch.eye(3))
    red, grey = torch.tensor([0.85, 0.05, 0.05]), torch.tensor([0.4, 0.4, 0.4])
    grass, trunk = torch.tensor([0.28, 0.45, 0.18]), torch.tensor([0.36, 0.25, 0.15])
    for m in shears:
        assert torch.allclose(m @ red, red, atol=1e-6) and torch.allclose(m @ grey, grey, atol=1e-6)
    brown = shears[0] @ grass  # toward red: the green ground turns brown (red above green above blue) ...
    assert brown[0] > brown[1] > brown[2] and brown[0] > grass[0] + 0.2
    assert (shears[0] @ trunk - trunk).abs().max() < 0.1  # ... while a brown trunk barely moves
    frames = torch.zeros(16, 2, 4, 4, 3, dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 71, 115, 46  # green windows, one red pixel in each
    frames[:, :, 0, 0] = torch.tensor([217, 13, 13], dtype=torch.uint8)
    cfg = T.AugmentConfig(brightness=0, contrast=0, shadow_probability=0, noise_std=0, max_shift=0, colour_shear=1.5)
    out = T.augment_windows(frames, cfg, torch.Generator().manual_seed(0)).int()
    assert ((out[:, :, 0, 0] - frames[:, :, 0, 0].int()).abs() <= 1).all()  # the anchor's red stays
    assert (out[:, :, 1:, 1:, 0] > out[:, :, 1:, 1:, 1]).any()  # some green windows turn red-brown
    assert torch.equal(out[:, 0], out[:, 1])  # one draw per window
    with pytest.raises(ValueError, match="colour_anchor"):
        T.AugmentConfig(colour_anchor=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="colour_shear"):
        T.AugmentConfig(colour_shear=-1)


def test_loss_weighting_matches_a_hand_computation():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 2), torch.randn(2, 3, 2)
    raw = torch.randn(2, 3, 2)
    weighted, out_w = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.5])
    alpha = 0.7
    hand = 0.0
    for b in range(2):
        for t in range(3):
            for o in range(2):
                w = out_w[o] * (math.exp(alpha * abs(float(raw[b, t, o]))) if o == 0 else 1.0)
                hand += float(w) * float(pred[b, t, o] - target[b, t, o]) ** 2
    hand /= 12
    got = T.weighted_mse(pred, target, raw, alpha, weighted, out_w)
    assert got.item() == pytest.approx(hand, rel=1e-6)
    plain = T.weighted_mse(pred, target, raw, 0.0, weighted, torch.ones(2))
    assert plain.item() == pytest.approx(torch.mean((pred - target) ** 2).item(), rel=1e-6)
    assert got.item() != pytest.approx(T.weighted_mse(pred, target, raw, 0.0, weighted, out_w).item())


def test_cosine_schedule_warms_up_and_decays_to_the_floor():
    f = T.lr_lambda_cosine(total_steps=100, warmup_steps=10, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.1)
    assert f(55) == pytest.approx(0.55)


# -- runs -------------------------------------------------------------------------------------------------------


def test_resume_gives_the_weights_of_an_uninterrupted_run(bags, cache, tmp_path):
    config = tiny_config(cache, model={"dropout": 0.2}, epochs=2, schedule="onecycle")
    straight = T.train(config, bags[:2], tmp_path / "straight", val_bags=bags[2:])
    assert straight.epochs_run == 2
    first = T.train(config, bags[:2], tmp_path / "split", val_bags=bags[2:], stop_after_epochs=1)
    assert first.epochs_run == 1
    resumed = T.train(config, bags[:2], tmp_path / "split", val_bags=bags[2:], resume=tmp_path / "split")
    assert resumed.epochs_run == 2 and [r["epoch"] for r in resumed.history] == [2]
    a, b = weights(tmp_path / "straight" / "last"), weights(tmp_path / "split" / "last")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.history[0]["val_loss"] == straight.history[-1]["val_loss"]
    rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + the epoch before the resume + the epoch after it


def test_loader_workers_augment_and_train_to_the_same_weights(bags, cache, tmp_path):
    """training.workers moves the augmentation into the loader's processes; the run is the same bit for bit."""
    runs = {}
    for workers in (0, 2):
        T.train(tiny_config(cache, epochs=1, workers=workers), bags[:2], tmp_path / f"w{workers}", val_bags=bags[2:])
        runs[workers] = weights(tmp_path / f"w{workers}" / "last")
    assert all(torch.equal(runs[0][name], runs[2][name]) for name in runs[0])


def test_precision_auto_is_measured_and_recorded(bags, cache, tmp_path, capsys):
    T.train(tiny_config(cache, epochs=1, precision="auto"), bags[:1], tmp_path / "run", val_bags=bags[1:2])
    chosen = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["training"]["precision"]
    assert chosen in ("fp32", "bf16")  # what --resume reads back: the choice, not "auto"
    err = capsys.readouterr().err
    assert f"precision auto -> {chosen}" in err and torch.backends.cpu.get_cpu_capability() in err


def test_the_checkpoint_carries_the_timing_of_the_windows_and_the_driver_runs_it(bags, cache, tmp_path):
    data = tiny_config(cache, epochs=1).to_dict()
    data["timing"] = {"nominal_dt": 0.04, "min_dt": 0.01, "max_dt": 0.2, "reset_gap": 0.6}
    config = T.RunConfig.from_dict(data)
    T.train(config, bags[:1], tmp_path / "run", val_bags=bags[1:2])
    for stem in ("best", "last"):
        document = checkpoint.read_config(tmp_path / "run" / stem)
        assert document["config"]["timing"] == data["timing"]
        assert document["metadata"]["dataset"]["timing"] == data["timing"]
        assert Driver(checkpoint.load(tmp_path / "run" / stem)).timing == config.timing
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["timing"] == data["timing"] and "timing" not in saved["dataset"]


def test_cli_resume_reads_the_saved_run(bags, cache, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(tiny_config(cache, epochs=2).to_dict()))
    out = tmp_path / "run"
    args = ["train", "--config", str(config), "--bags", *map(str, bags), "--out", str(out), "--no-progress"]
    assert main(args + ["--stop-after-epochs", "1"]) == 0
    run_info = json.loads((out / "run.json").read_text())
    assert len(run_info["val_bags"]) == 1 and len(run_info["bags"]) == 2  # split by bag
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert json.loads((out / "last.json").read_text())["metadata"]["epoch"] == 2


def test_init_from_starts_at_the_checkpoint_and_refuses_another_model(bags, cache, tmp_path):
    """A fine-tune (DAgger) starts from the checkpoint's weights with a fresh schedule and keeps its statistics."""
    T.train(tiny_config(cache, epochs=1), bags[:2], tmp_path / "first", val_bags=bags[2:])
    first = checkpoint.load(tmp_path / "first" / "best")
    # lr 1e-9: one epoch from the checkpoint leaves its weights, so the validation loss is the checkpoint's own
    still = T.train(tiny_config(cache, epochs=1, lr=1e-9, init_from=str(tmp_path / "first" / "best")), bags[1:2],
                    tmp_path / "still", val_bags=bags[2:])
    fresh = T.train(tiny_config(cache, epochs=1, lr=1e-9), bags[1:2], tmp_path / "fresh", val_bags=bags[2:])
    again = first.config
    tuned = checkpoint.load(tmp_path / "still" / "best")
    assert tuned.config.target_mean == again.target_mean and tuned.config.target_std == again.target_std
    for name, tensor in first.state_dict().items():
        assert torch.allclose(tuned.state_dict()[name], tensor, atol=1e-6), name
    assert still.history[0]["val_loss"] != fresh.history[0]["val_loss"]
    wider = tiny_config(cache, model={"inter_neurons": 6}, epochs=1, init_from=str(tmp_path / "first" / "best"))
    with pytest.raises(T.TrainError, match=r"first/best builds another model.*inter_neurons 5 \(config: 6\)"):
        T.train(wider, bags[1:2], tmp_path / "wider", val_bags=bags[2:])
    # a field only another core reads makes no other model of a CfC; one the CfC reads does
    init = str(tmp_path / "first" / "best")
    T.train(tiny_config(cache, model={"ltc_input_norm": False}, epochs=1, init_from=init), bags[1:2],
            tmp_path / "other_core_field", val_bags=bags[2:])
    with pytest.raises(T.TrainError, match=r"cfc_input_norm True \(config: False\)"):
        T.train(tiny_config(cache, model={"cfc_input_norm": False}, epochs=1, init_from=init), bags[1:2],
                tmp_path / "own_field", val_bags=bags[2:])
    with pytest.raises(T.TrainError, match=r"init_from: .*nowhere.json"):
        T.train(tiny_config(cache, epochs=1, init_from=str(tmp_path / "nowhere")), bags[1:2], tmp_path / "x",
                val_bags=bags[2:])


def test_early_stopping_stops_when_validation_does_not_improve(bags, cache, tmp_path):
    config = tiny_config(cache, epochs=6, lr=1e-9, patience=2, min_delta=1.0)
    result = T.train(config, bags[:2], tmp_path / "run", val_bags=bags[2:])
    assert result.stopped_early and result.epochs_run == 3  # epoch 1 sets the best, 2 and 3 do not beat it
    assert result.best_epoch == 1
    assert checkpoint.read_config(tmp_path / "run" / "best")["metadata"]["epoch"] == 1


def test_one_bad_bag_is_reported_and_skipped_unless_strict(bags, cache, tmp_path, capsys):
    bad = tmp_path / "broken.mcap"
    bad.write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 40)
    config = tiny_config(cache, epochs=1, val_fraction=0.0)
    result = T.train(config, [bags[0], bad], tmp_path / "run")
    assert [s["bag"] for s in result.skipped_bags] == [str(bad)]
    assert "broken.mcap" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["skipped_bags"][0]["bag"] == str(bad)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    code = main(["train", "--config", str(path), "--bags", str(bags[0]), str(bad), "--out", str(tmp_path / "s"),
                 "--strict", "--no-progress"])
    assert code == 1
    assert "broken.mcap" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torch_distributed_world_size_one_on_gloo_matches_a_plain_run(bags, cache, tmp_path, monkeypatch):
    config = tiny_config(cache, epochs=1)
    plain = T.train(config, bags[:2], tmp_path / "plain", val_bags=bags[2:])
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0",
                       "WORLD_SIZE": "1", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    try:
        ddp = T.train(config, bags[:2], tmp_path / "ddp", val_bags=bags[2:])
        assert torch.distributed.is_initialized() and torch.distributed.get_backend() == "gloo"
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["world_size"] == 1
    a, b = weights(tmp_path / "plain" / "last"), weights(tmp_path / "ddp" / "last")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    assert ddp.history[0]["val_loss"] == pytest.approx(plain.history[0]["val_loss"], rel=1e-5)


@pytest.mark.parametrize(("core", "precision"), [("cfc", "bf16"), ("ltc", "fp32"), ("lstm", "bf16"), ("cnn", "fp32")])
def test_every_core_trains_a_step(bags, cache, tmp_path, core, precision):
    config = tiny_config(cache, model={"core": core, "ode_unfolds": 2}, epochs=1, steps_per_epoch=1,
                         precision=precision, val_fraction=0.0)
    result = T.train(config, bags[:1], tmp_path / "run")
    assert result.epochs_run == 1 and math.isfinite(result.history[0]["train_loss"])
    policy = checkpoint.load(tmp_path / "run" / "last")
    assert policy.config.core == core
    assert next(iter(policy.parameters())).dtype == torch.float32  # autocast leaves the weights in fp32


def test_cuda_request_without_cuda_is_an_error(bags, cache, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(T.TrainError, match="cuda"):
        T.train(tiny_config(cache), bags[:2], tmp_path / "run", device="cuda")
