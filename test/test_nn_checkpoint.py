"""Checkpoints: round trip, and every corrupt or mismatched case gives an error naming the file; the timing stored
beside preprocess is what the Driver runs, and a checkpoint from before it existed loads the old defaults."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lnn_control.nn import checkpoint
from lnn_control.nn.checkpoint import CheckpointError
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.timing import TimingConfig
from lnn_control.vision import PreprocessConfig

SMALL = PreprocessConfig(height=56, width=56)


def policy(core: str = "ltc", **kw) -> Policy:
    return Policy(PolicyConfig(core=core, preprocess=SMALL, **kw))


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, Path]:
    return checkpoint.save(policy(), tmp_path / "model", metadata={"note": "test"})


@pytest.mark.parametrize("core", ["ltc", "cfc", "lstm", "cnn"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, core: str) -> None:
    original = policy(core, seed=3).eval()
    weights, config = checkpoint.save(original, tmp_path / core)
    loaded = checkpoint.load(weights)
    frames = torch.randint(0, 256, (2, 5, 56, 56, 3), dtype=torch.uint8)
    dt = torch.rand(2, 5, 1) * 0.1 + 0.01
    with torch.no_grad():
        assert torch.equal(original(frames, dt)[0], loaded(frames, dt)[0])
    document = json.loads(config.read_text())
    assert document["config"]["core"] == core and document["parameters"]["total"] > 70_000
    # The weights file is plain safetensors: an 8-byte header length and a JSON header, no pickle opcodes.
    raw = weights.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8 : 8 + header_len])["__metadata__"]["format"] == checkpoint.FORMAT


def expect(path: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_missing_files(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    weights.unlink()
    expect(weights, str(weights), "not found")
    config.unlink()
    expect(weights, str(config), "not found")


def test_truncated_and_altered_weights(saved: tuple[Path, Path]) -> None:
    weights, _ = saved
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    expect(weights, str(weights), "SHA-256")
    weights.write_bytes(data[:-4] + b"\x00\x00\x80\x7f")
    expect(weights, str(weights), "SHA-256")


def drop_hash(config: Path) -> None:
    document = json.loads(config.read_text())
    del document["weights_sha256"]
    config.write_text(json.dumps(document))


def test_truncated_without_hash_still_named(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    drop_hash(config)
    weights.write_bytes(weights.read_bytes()[:100])
    expect(weights, str(weights), "not a readable safetensors file")
    weights.write_bytes(b"")
    expect(weights, str(weights), "not a readable safetensors file")


def test_bad_json(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    text = config.read_text()
    config.write_text(text[:-20])
    expect(weights, str(config), "not valid JSON")
    document = json.loads(text)
    document["format"] = "something else"
    config.write_text(json.dumps(document))
    expect(weights, "format")
    document = json.loads(text)
    document["config"]["hidden_layers"] = 3
    config.write_text(json.dumps(document))
    expect(weights, "hidden_layers")
    document = json.loads(text)
    document["config"]["features"] = "thirty-two"
    config.write_text(json.dumps(document))
    expect(weights, "'features'")


def test_mismatched_pair(tmp_path: Path) -> None:
    weights, _ = checkpoint.save(policy("ltc"), tmp_path / "a")
    _, other_config = checkpoint.save(policy("cfc"), tmp_path / "b")
    other_config.replace(tmp_path / "a.json")
    expect(weights, "SHA-256")
    drop_hash(tmp_path / "a.json")
    expect(weights, "missing", "unexpected")
    # Same tensor names, different shapes.
    weights, config = checkpoint.save(policy("lstm", lstm_hidden=16), tmp_path / "c")
    document = json.loads(config.read_text())
    document["config"]["lstm_hidden"] = 32
    del document["weights_sha256"]
    config.write_text(json.dumps(document))
    expect(weights, "has shape", "core.")


def test_nan_weights_and_wiring_mismatch(tmp_path: Path) -> None:
    weights, config = checkpoint.save(policy("ltc"), tmp_path / "m")
    drop_hash(config)
    tensors = load_file(str(weights))
    tensors["core.vleak"][0] = float("nan")
    save_file(tensors, str(weights))
    expect(weights, "'core.vleak'", "NaN")
    tensors["core.vleak"][0] = 0.0
    tensors["core.mask"] = torch.zeros_like(tensors["core.mask"])
    save_file(tensors, str(weights))
    expect(weights, "wiring")


# -- timing: stored beside preprocess, read by the Driver -------------------------------------------------------------


def test_the_timing_saved_in_a_checkpoint_is_what_the_driver_uses(tmp_path: Path) -> None:
    from lnn_control.driver import Driver

    timing = TimingConfig(nominal_dt=0.02, min_dt=0.005, max_dt=0.1, reset_gap=0.4)
    _, config = checkpoint.save(policy(timing=timing), tmp_path / "m")
    assert json.loads(config.read_text())["config"]["timing"] == {
        "nominal_dt": 0.02, "min_dt": 0.005, "max_dt": 0.1, "reset_gap": 0.4
    }
    driver = Driver(checkpoint.load(tmp_path / "m"))
    assert driver.timing == timing
    frame = torch.zeros(60, 60, 3, dtype=torch.uint8).numpy()
    driver.observe(frame, 0)
    assert driver.last.dt_s == 0.02
    driver.observe(frame, 300_000_000)
    assert driver.last.dt_s == 0.1 and driver.last.event is None  # clamped to the model's max_dt
    driver.observe(frame, 800_000_000)
    assert "reset_gap 0.4" in driver.last.event  # the model's reset_gap, not the old default 1.0


def test_an_old_checkpoint_without_timing_loads_with_the_drivers_old_defaults(tmp_path: Path) -> None:
    original = policy(seed=5)
    _, config = checkpoint.save(original, tmp_path / "old")
    document = json.loads(config.read_text())
    del document["config"]["timing"]  # as written before the field existed (the weights' hash is unchanged)
    config.write_text(json.dumps(document))
    loaded = checkpoint.load(tmp_path / "old")
    assert loaded.config.timing == TimingConfig(nominal_dt=0.05, min_dt=0.001, max_dt=0.5, reset_gap=1.0)
    assert loaded.config == original.config
    shipped = Path(__file__).resolve().parents[1] / "models" / "ltc_ncp_carracing"
    # the shipped car model was saved before the field, then given the rule it was trained with (one sim frame)
    assert json.loads(shipped.with_suffix(".json").read_text())["config"]["timing"]["nominal_dt"] == 0.02
    assert checkpoint.load(shipped).config.timing == TimingConfig(nominal_dt=0.02)


def test_a_bad_timing_is_named(tmp_path: Path) -> None:
    _, config = checkpoint.save(policy(), tmp_path / "m")
    document = json.loads(config.read_text())
    document["config"]["timing"] = {"nominal_dt": 0.05, "max_gap_s": 0.5}
    config.write_text(json.dumps(document))
    expect(tmp_path / "m", str(config), "unknown timing field(s): max_gap_s")
    document["config"]["timing"] = {"nominal_dt": 2.0}
    config.write_text(json.dumps(document))
    expect(tmp_path / "m", str(config), "min_dt <= nominal_dt <= max_dt")
