"""Where the Driver's network runs: PyTorch (eager) or ONNX Runtime, behind one small interface.

A backend does the two halves of a step and nothing else (the Driver keeps the state, the dt rule and the limits):

- ``encode(frame)``: one preprocessed uint8 frame ``(H, W, 3)`` -> features ``(F,)`` float32, in two parts that a
  node times apart: ``frame_input(frame)`` (the batch of one the encoder reads: a view of the frame's storage, no
  copy; the normalisation is part of the graph) and ``encode_input(x)``;
- ``step(features, state, dt_s)``: features ``(1, F)``, state ``(1, S)`` and seconds ``(1, 1)`` (float32 arrays or
  tensors) -> outputs ``(1, O)`` and the next state, as torch tensors.

:func:`make_backend` builds ``onnxruntime`` from the loaded policy: two graphs (the conv head; the recurrent step
with the output scaling) exported with :mod:`torch.onnx`, cached under ``$LNN_CONTROL_CACHE`` (else
``~/.cache/lnn_control``) ``/onnx/<hash of the weights and config>``, then checked against PyTorch on a few frames
with irregular dt. A mismatch beyond ``tolerance`` (or onnxruntime missing) falls back to PyTorch and says why. The
gaps are relative to each compared value's scale (its largest magnitude, at least 1): a trained conv head's features
reach several hundred, where float32 rounding alone leaves absolute gaps of 1e-4 between two correct runtimes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from lnn_control.nn.policy import Policy

BACKENDS = ("torch", "onnxruntime")
#: Largest difference from PyTorch that the ONNX graphs may show, on any feature, output or state value of the check,
#: relative to that quantity's scale (:func:`relative_gap`).
TOLERANCE = 1e-5
CHECK_FRAMES = 8


class Backend(Protocol):
    """The two halves of a policy step (see the module docstring)."""

    name: str

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """Preprocessed uint8 frame (H, W, 3) -> features (F,) float32."""
        ...

    def frame_input(self, frame: np.ndarray) -> Any:
        """The encoder's input for ``frame``: a (1, H, W, 3) view of its storage."""
        ...

    def encode_input(self, x: Any) -> np.ndarray:
        """:meth:`frame_input`'s result -> features (F,) float32."""
        ...

    def step(self, features: Any, state: Tensor, dt_s: Any) -> tuple[Tensor, Tensor]:
        """(1, F) features, (1, S) state, (1, 1) seconds -> (1, O) outputs, (1, S) state."""
        ...


def _batch_view(backend: Any, frame: np.ndarray, make: Callable[[np.ndarray], Any]) -> Any:
    """``make(frame)``, the encoder's batch-of-one view of ``frame``, made once per array: the Driver hands over the
    same preallocated buffer every frame, so its view is kept (it shares the buffer's storage, so it sees each new
    frame) and nothing is allocated or dispatched per frame. Arrays that are not C-contiguous are not kept."""
    if not frame.flags.c_contiguous:
        return make(frame)
    cached = getattr(backend, "_input", None)
    if cached is None or cached[0] is not frame:
        cached = backend._input = (frame, make(frame))
    return cached[1]


class TorchBackend:
    """The policy in PyTorch, eager, under ``inference_mode``."""

    name = "torch"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy.eval()

    def encode(self, frame: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.encode_input(self.frame_input(frame))

    def frame_input(self, frame: np.ndarray) -> Tensor:  # noqa: D102
        return _batch_view(self, frame, lambda f: torch.from_numpy(f).unsqueeze(0))

    def encode_input(self, x: Tensor) -> np.ndarray:  # noqa: D102
        with torch.inference_mode():
            return self.policy.encode(x)[0].numpy().astype(np.float32, copy=False)

    def step(self, features: Any, state: Tensor, dt_s: Any) -> tuple[Tensor, Tensor]:  # noqa: D102
        x = torch.as_tensor(features, dtype=torch.float32)
        dt = torch.as_tensor(dt_s, dtype=torch.float32)
        with torch.inference_mode():
            return self.policy.step(x, state, dt)


class _Encoder(nn.Module):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, frame: Tensor) -> Tensor:
        return self.policy.encode(frame)


class _Step(nn.Module):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, features: Tensor, state: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        return self.policy.step(features, state, dt)


class OnnxBackend:
    """The two halves as ONNX Runtime sessions, one intra-op thread each (batch 1 on a small computer)."""

    name = "onnxruntime"

    def __init__(self, encoder_path: Path, step_path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(encoder_path), options, providers=providers)
        self.stepper = ort.InferenceSession(str(step_path), options, providers=providers)
        #: The exporter drops inputs a core does not read (the CNN's state and dt, the LSTM's dt).
        self.step_inputs = {i.name for i in self.stepper.get_inputs()}

    def encode(self, frame: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.encode_input(self.frame_input(frame))

    def frame_input(self, frame: np.ndarray) -> np.ndarray:  # noqa: D102
        return _batch_view(self, frame, lambda f: np.ascontiguousarray(f)[None])

    def encode_input(self, x: np.ndarray) -> np.ndarray:  # noqa: D102
        (features,) = self.encoder.run(None, {"frame": x})
        return features[0]

    def step(self, features: Any, state: Tensor, dt_s: Any) -> tuple[Tensor, Tensor]:  # noqa: D102
        feeds = {
            "features": np.ascontiguousarray(np.asarray(features, dtype=np.float32).reshape(1, -1)),
            "state": state.numpy() if isinstance(state, Tensor) else np.asarray(state, dtype=np.float32),
            "dt": np.asarray(dt_s, dtype=np.float32).reshape(1, 1),
        }
        output, next_state = self.stepper.run(None, {k: v for k, v in feeds.items() if k in self.step_inputs})
        return torch.from_numpy(output), torch.from_numpy(next_state)


def weights_hash(policy: Policy) -> str:
    """A hash of the policy's config and weights: the cache key of its ONNX graphs."""
    digest = hashlib.sha256(json.dumps(policy.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(policy.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def cache_dir() -> Path:
    """``$LNN_CONTROL_CACHE/onnx``, else ``$XDG_CACHE_HOME/lnn_control/onnx``, else ``~/.cache/lnn_control/onnx``."""
    if env := os.environ.get("LNN_CONTROL_CACHE"):
        return Path(env) / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lnn_control" / "onnx"


def export_graphs(policy: Policy, folder: Path) -> tuple[Path, Path]:
    """The encoder and step graphs of ``policy`` in ``folder`` (written unless there; atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder, step = folder / "encoder.onnx", folder / "step.onnx"
    pre = policy.config.preprocess
    frame = torch.zeros(1, pre.height, pre.width, 3, dtype=torch.uint8)
    features = torch.zeros(1, policy.config.features)
    state, dt = policy.initial_state(1), torch.full((1, 1), policy.dt_unit_s)
    jobs = ((encoder, _Encoder(policy), (frame,), ["frame"], ["features"]),
            (step, _Step(policy), (features, state, dt), ["features", "state", "dt"], ["output", "next_state"]))
    for path, module, inputs, names, outputs in jobs:
        if path.is_file():
            continue
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), inputs, str(partial), input_names=names, output_names=outputs,
                              opset_version=17, dynamo=False)
        partial.replace(path)
    return encoder, step


def relative_gap(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference, divided by the reference's largest magnitude when that is above 1."""
    if not reference.size:
        return 0.0
    return float(np.abs(ours - reference).max() / max(1.0, float(np.abs(reference).max())))


def mismatch(policy: Policy, backend: Backend, frames: int = CHECK_FRAMES, seed: int = 0) -> float:
    """Largest :func:`relative_gap` between ``backend`` and PyTorch over ``frames`` random frames, carrying the state
    and feeding irregular dt (features, outputs and states)."""
    reference = TorchBackend(policy)
    rng = np.random.default_rng(seed)
    pre = policy.config.preprocess
    ours, theirs = policy.initial_state(1), policy.initial_state(1)
    worst = 0.0
    for _ in range(frames):
        frame = rng.integers(0, 256, (pre.height, pre.width, 3), dtype=np.uint8)
        dt = np.array([[rng.uniform(0.3, 3.0) * policy.dt_unit_s]], dtype=np.float32)
        a, b = backend.encode(frame), reference.encode(frame)
        ya, ours = backend.step(a[None], ours, dt)
        yb, theirs = reference.step(b[None], theirs, dt)
        worst = max(worst, relative_gap(a, b), relative_gap(ya.numpy(), yb.numpy()),
                    relative_gap(ours.numpy(), theirs.numpy()))
    return worst


def make_backend(
    policy: Policy, name: str = "torch", *, threads: int = 1, warn: Callable[[str], None] | None = None,
    tolerance: float = TOLERANCE,
) -> Backend:
    """The backend ``name`` for ``policy``; ``onnxruntime`` falls back to ``torch`` (saying why to ``warn``) when
    it is not installed, cannot load the graphs, or differs from PyTorch by more than ``tolerance``."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r}: choose from {', '.join(BACKENDS)}")
    if name == "torch":
        return TorchBackend(policy)
    say = warn or (lambda message: None)
    try:
        backend = OnnxBackend(*export_graphs(policy.eval(), cache_dir() / weights_hash(policy)), threads=threads)
    except ImportError:
        say("backend onnxruntime: onnxruntime is not installed (pip install onnxruntime); running torch")
        return TorchBackend(policy)
    except Exception as exc:  # noqa: BLE001 - any export or load failure: drive with torch, say why
        say(f"backend onnxruntime: the ONNX graphs could not be made or loaded ({exc}); running torch")
        return TorchBackend(policy)
    worst = mismatch(policy, backend)
    if not worst <= tolerance:
        say(f"backend onnxruntime differs from torch by {worst:.2e} of the values' scale (> {tolerance:g}) on "
            f"{CHECK_FRAMES} check frames: running torch")
        return TorchBackend(policy)
    return backend
