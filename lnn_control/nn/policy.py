"""Policy = conv head + recurrent core + output scaling, configured by one JSON-serialisable dataclass.

The node, the offline replay and the simulator evaluation all drive the same two calls:

- :meth:`Policy.encode`: uint8 frames -> features (the perception half);
- :meth:`Policy.step`: ``step(x, h, dt) -> (y, h)`` with ``dt`` in seconds (the policy half).

:meth:`Policy.act` is both in one, and :meth:`Policy.forward` runs whole windows for training; a test holds it
equal to looping :meth:`Policy.act`. Outputs are the fields of the model's action schema (``PolicyConfig.action``,
:mod:`lnn_control.command`), in its units.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lnn_control.command import CAR, ActionSchema, schema_from
from lnn_control.nn.baselines import FeedForwardCore, LSTMCore
from lnn_control.nn.cfc import MODES as CFC_MODES
from lnn_control.nn.cfc import CfCCell
from lnn_control.nn.core import RecurrentCore, sequence_dt
from lnn_control.nn.encoder import ConvHead
from lnn_control.nn.ltc import LTCCell
from lnn_control.nn.wiring import NCP, Wiring, fully_connected
from lnn_control.timing import TimingConfig
from lnn_control.vision import PreprocessConfig

CORES = ("ltc", "cfc", "lstm", "cnn")
WIRINGS = ("ncp", "full")


@dataclass
class PolicyConfig:
    """Everything needed to rebuild a policy; stored as JSON beside the weights."""

    core: str = "ltc"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    #: How camera stamps become dt (lnn_control.timing), as training used it; the Driver runs the same. A stored
    #: config without this field predates it and loads the defaults, the Driver's rule at the time.
    timing: TimingConfig = field(default_factory=TimingConfig)
    features: int = 32
    #: The command the policy outputs, one output per field (lnn_control.command). A stored config without this
    #: field predates it and loads the car's schema (it then has ``outputs: [steering, velocity]``).
    action: ActionSchema = CAR
    # Wiring of the liquid cores (ltc, cfc): the NCP paper's 12 inter / 6 command layout by default.
    wiring: str = "ncp"
    inter_neurons: int = 12
    command_neurons: int = 6
    sensory_fanout: int = 6
    inter_fanout: int = 4
    recurrent_command_synapses: int = 4
    motor_fanin: int = 6
    wiring_seed: int = 22222
    full_units: int = 19
    ode_unfolds: int = 6
    cfc_mode: str = "default"
    #: CfC: divide the features by their RMS before the first layer (see lnn_control.nn.cfc). A stored config
    #: without this field predates it and loads as False, so older CfC checkpoints compute what they were trained as.
    cfc_input_norm: bool = True
    #: LTC: the same normalisation of the features (see lnn_control.nn.ltc); a stored config without this field
    #: predates it and loads as False.
    ltc_input_norm: bool = True
    lstm_hidden: int = 64
    ff_hidden: int = 64
    #: Seconds per unit of model time: at the nominal frame rate, dt = 1 inside the cell.
    dt_unit_s: float = 0.05
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    #: Outputs are learned in normalised units: y = core_output * target_std + target_mean.
    #: Empty: 0 and 1 for every output.
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig(**self.preprocess)
        if isinstance(self.timing, dict):
            self.timing = TimingConfig.from_dict(self.timing)
        self.action = schema_from(self.action)
        for name in ("image_mean", "image_std", "target_mean", "target_std"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.core not in CORES:
            raise ValueError(f"core must be one of {CORES}, got {self.core!r}")
        if self.wiring not in WIRINGS:
            raise ValueError(f"wiring must be one of {WIRINGS}, got {self.wiring!r}")
        if self.cfc_mode not in CFC_MODES:
            raise ValueError(f"cfc_mode must be one of {CFC_MODES}, got {self.cfc_mode!r}")
        n_out = len(self.outputs)
        self.target_mean = self.target_mean or (0.0,) * n_out
        self.target_std = self.target_std or (1.0,) * n_out
        if len(self.target_mean) != n_out or len(self.target_std) != n_out:
            raise ValueError(f"target_mean and target_std need {n_out} values (one per output)")
        if any(s <= 0 for s in self.target_std):
            raise ValueError("target_std values must be positive")
        if self.dt_unit_s <= 0:
            raise ValueError(f"dt_unit_s must be positive, got {self.dt_unit_s}")

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output names: the action's field names."""
        return self.action.names

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        data = dataclasses.asdict(self)
        data["action"] = self.action.to_dict()
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PolicyConfig:
        """Build from JSON data; unknown or mistyped fields raise ``ValueError`` naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"policy config must be a JSON object, got {type(data).__name__}")
        data = _legacy_outputs(data)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown policy config field(s): {', '.join(unknown)}")
        data = {"cfc_input_norm": False, "ltc_input_norm": False, **data}  # absent: stored before the field existed
        defaults = cls()
        for name, value in data.items():
            expected = getattr(defaults, name)
            if isinstance(expected, bool) or isinstance(value, bool):
                ok = isinstance(value, bool) == isinstance(expected, bool)
            elif isinstance(expected, (int, float)):
                ok = isinstance(value, (int, float)) and (isinstance(expected, float) or float(value).is_integer())
            elif isinstance(expected, str):
                ok = isinstance(value, str)
            elif isinstance(expected, tuple):
                ok = isinstance(value, (list, tuple))
            elif isinstance(expected, ActionSchema):
                ok = isinstance(value, (dict, str))
            else:
                ok = isinstance(value, dict)
            if not ok:
                raise ValueError(f"policy config field {name!r} has the wrong type: {value!r}")
        return cls(**data)

    def build_wiring(self) -> Wiring:
        """The wiring of a liquid core (ltc, cfc)."""
        outputs = len(self.outputs)
        if self.wiring == "full":
            return fully_connected(self.full_units, self.features, outputs, seed=self.wiring_seed)
        return NCP(
            inter_neurons=self.inter_neurons,
            command_neurons=self.command_neurons,
            motor_neurons=outputs,
            sensory_fanout=self.sensory_fanout,
            inter_fanout=self.inter_fanout,
            recurrent_command_synapses=self.recurrent_command_synapses,
            motor_fanin=self.motor_fanin,
            seed=self.wiring_seed,
        ).build(self.features)


def _legacy_outputs(data: dict) -> dict:
    """A config stored before ``action`` existed names its outputs instead: they must be the car's."""
    if "outputs" not in data:
        return data
    data = dict(data)
    outputs = tuple(data.pop("outputs"))
    schema = schema_from(data.get("action", CAR.name))
    if outputs != schema.names:
        raise ValueError(f"policy config outputs {list(outputs)} do not match the action's fields {list(schema.names)}")
    data.setdefault("action", schema.name)
    return data


def build_core(config: PolicyConfig) -> RecurrentCore:
    """The recurrent core named by ``config.core``."""
    outputs = len(config.outputs)
    if config.core == "ltc":
        return LTCCell(config.build_wiring(), ode_unfolds=config.ode_unfolds, seed=config.seed,
                       input_norm=config.ltc_input_norm)
    if config.core == "cfc":
        return CfCCell(config.build_wiring(), mode=config.cfc_mode, seed=config.seed, input_norm=config.cfc_input_norm)
    if config.core == "lstm":
        return LSTMCore(config.features, config.lstm_hidden, outputs)
    return FeedForwardCore(config.features, config.ff_hidden, outputs)


class Policy(nn.Module):
    """uint8 frames + elapsed seconds -> the action's fields, carrying the core's state."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        super().__init__()
        self.config = config or PolicyConfig()
        torch.manual_seed(self.config.seed)
        pre = self.config.preprocess
        self.encoder = ConvHead(
            pre.height, pre.width, self.config.features, self.config.image_mean, self.config.image_std,
            self.config.dropout,
        )
        self.core = build_core(self.config)
        self.register_buffer("target_mean", torch.tensor(self.config.target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(self.config.target_std, dtype=torch.float32))
        self.dt_unit_s = float(self.config.dt_unit_s)
        self.state_size = self.core.state_size

    # -- the two halves -----------------------------------------------------------------------------------------

    def encode(self, frames: Tensor) -> Tensor:
        """uint8 frames (B, H, W, 3) or (B, T, H, W, 3) -> features (B, F) or (B, T, F)."""
        if frames.dim() == 5:
            b, t = frames.shape[:2]
            return self.encoder(frames.reshape((b * t,) + frames.shape[2:])).reshape(b, t, -1)
        return self.encoder(frames)

    def step(self, x: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """Features (B, F), state (B, S), elapsed seconds (B, 1) -> outputs (B, O), new state."""
        y, h = self.core.step(x, h, dt / self.dt_unit_s)
        return y * self.target_std + self.target_mean, h

    def act(self, frames: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """Both halves: uint8 frames (B, H, W, 3) -> outputs (B, O), new state."""
        return self.step(self.encoder(frames), h, dt)

    # -- conveniences -------------------------------------------------------------------------------------------

    def initial_state(self, batch: int = 1) -> Tensor:
        """The zero state (B, S) on the policy's device."""
        return torch.zeros(batch, self.state_size, device=self.target_mean.device)

    @torch.jit.unused
    def forward(
        self, frames: Tensor, dt: Tensor | float | None = None, h0: Tensor | None = None, normalised: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Windows of uint8 frames (B, T, H, W, 3) with dt seconds (B, T, 1) -> outputs (B, T, O), last state.

        ``normalised=True`` returns the outputs before output scaling, the space the training loss lives in.
        """
        features = self.encode(frames)
        dt = sequence_dt(self.dt_unit_s if dt is None else dt, features)
        y, h = self.core(features, dt / self.dt_unit_s, h0)
        if normalised:
            return y, h
        return y * self.target_std + self.target_mean, h

    def normalise_targets(self, y: Tensor) -> Tensor:
        """Targets in the action's units -> the space the core learns in."""
        return (y - self.target_mean) / self.target_std

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters, net of masks: conv head, recurrent part, whole core, total."""
        counts = {
            "conv": self.encoder.conv_parameter_count(),
            "encoder": self.encoder.parameter_count(),
            "recurrent": self.core.recurrent_parameter_count(),
            "core": self.core.parameter_count(),
        }
        counts["total"] = counts["encoder"] + counts["core"]
        if isinstance(self.core, (LTCCell, CfCCell)):
            counts["neurons"] = self.core.wiring.units
            counts["synapses"] = self.core.wiring.synapse_count + self.core.wiring.sensory_synapse_count
        return counts
