"""Wirings: which neuron talks to which, kept apart from the cells that use them.

A wiring is two fixed sign matrices: ``adjacency[i, j]`` (+1 excitatory, -1 inhibitory, 0 none) for the synapse from
neuron ``i`` to neuron ``j``, and ``sensory_adjacency[k, j]`` from input ``k`` to neuron ``j``. Neurons are ordered
motor first (``0 .. output_dim-1``, the network's outputs), then command, then inter, the convention of the NCP
paper's reference code, so a trained network reads its outputs from the first neurons.

Layers (``layers``) list neuron indices from the sensory side to the motor side; the wired CfC uses them, the LTC
ignores them. A fully connected wiring is one layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Wiring:
    """Fixed sign matrices of a network; build with :class:`NCP`, :func:`auto_ncp` or :func:`fully_connected`."""

    adjacency: np.ndarray
    sensory_adjacency: np.ndarray
    output_dim: int
    layers: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.adjacency = np.asarray(self.adjacency, dtype=np.float32)
        self.sensory_adjacency = np.asarray(self.sensory_adjacency, dtype=np.float32)
        n = self.adjacency.shape[0]
        if self.adjacency.shape != (n, n):
            raise ValueError(f"adjacency must be square, got {self.adjacency.shape}")
        if self.sensory_adjacency.ndim != 2 or self.sensory_adjacency.shape[1] != n:
            raise ValueError(f"sensory_adjacency must be (inputs, {n}), got {self.sensory_adjacency.shape}")
        for name, m in (("adjacency", self.adjacency), ("sensory_adjacency", self.sensory_adjacency)):
            if not np.isin(m, (-1.0, 0.0, 1.0)).all():
                raise ValueError(f"{name} entries must be -1, 0 or +1")
        if not 1 <= self.output_dim <= n:
            raise ValueError(f"output_dim must be in 1..{n}, got {self.output_dim}")
        if not self.layers:
            self.layers = [list(range(n))]
        if sorted(i for layer in self.layers for i in layer) != list(range(n)):
            raise ValueError("layers must partition the neurons 0..units-1")

    @property
    def units(self) -> int:
        """Number of neurons."""
        return self.adjacency.shape[0]

    @property
    def input_dim(self) -> int:
        """Number of sensory inputs."""
        return self.sensory_adjacency.shape[0]

    @property
    def synapse_count(self) -> int:
        """Neuron-to-neuron synapses."""
        return int(np.abs(self.adjacency).sum())

    @property
    def sensory_synapse_count(self) -> int:
        """Input-to-neuron synapses."""
        return int(np.abs(self.sensory_adjacency).sum())

    def to_dict(self) -> dict:
        """JSON-ready form (stored in checkpoints so a wiring is never regenerated differently)."""
        return {
            "adjacency": self.adjacency.astype(int).tolist(),
            "sensory_adjacency": self.sensory_adjacency.astype(int).tolist(),
            "output_dim": self.output_dim,
            "layers": self.layers,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Wiring:
        """Inverse of :meth:`to_dict`."""
        return cls(
            adjacency=np.array(data["adjacency"], dtype=np.float32),
            sensory_adjacency=np.array(data["sensory_adjacency"], dtype=np.float32),
            output_dim=int(data["output_dim"]),
            layers=[list(map(int, layer)) for layer in data["layers"]],
        )


def fully_connected(units: int, inputs: int, outputs: int, seed: int = 0, excitatory_fraction: float = 2 / 3) -> Wiring:
    """Every input reaches every neuron and every neuron every neuron, with random polarities."""
    rng = np.random.default_rng(seed)

    def signs(shape: tuple[int, int]) -> np.ndarray:
        return np.where(rng.random(shape) < excitatory_fraction, 1.0, -1.0).astype(np.float32)

    return Wiring(signs((units, units)), signs((inputs, units)), outputs)


@dataclass(frozen=True)
class NCP:
    """Neural circuit policy wiring: sensory -> inter -> command -> motor (Lechner et al., 2020).

    Each input reaches ``sensory_fanout`` inter neurons, each inter neuron ``inter_fanout`` command neurons, the
    command layer has ``recurrent_command_synapses`` random recurrent synapses, and each motor neuron listens to
    ``motor_fanin`` command neurons. Neurons left without an input (or without an output) get synapses from
    (or to) the layer before (or after), so every neuron lies on a sensory-to-motor path. Polarity is excitatory
    with probability 2/3. The NCP paper's lane keeper is ``NCP(12, 6, 1, 6, 4, 4, 6)`` on 32 inputs.
    """

    inter_neurons: int = 12
    command_neurons: int = 6
    motor_neurons: int = 2
    sensory_fanout: int = 6
    inter_fanout: int = 4
    recurrent_command_synapses: int = 4
    motor_fanin: int = 6
    seed: int = 22222

    def build(self, inputs: int) -> Wiring:
        """The wiring for ``inputs`` sensory inputs."""
        self._check(inputs)
        i_n, c_n, m_n = self.inter_neurons, self.command_neurons, self.motor_neurons
        rng = np.random.default_rng(self.seed)
        motor = list(range(m_n))
        command = list(range(m_n, m_n + c_n))
        inter = list(range(m_n + c_n, m_n + c_n + i_n))
        units = m_n + c_n + i_n
        adjacency = np.zeros((units, units), np.float32)
        sensory = np.zeros((inputs, units), np.float32)
        _fan_out(rng, sensory, list(range(inputs)), inter, self.sensory_fanout)
        _fan_out(rng, adjacency, inter, command, self.inter_fanout)
        for _ in range(self.recurrent_command_synapses):
            src, dst = rng.choice(command, size=2, replace=True)
            adjacency[src, dst] = _sign(rng)
        for t in motor:
            for s in rng.choice(command, size=self.motor_fanin, replace=False):
                adjacency[s, t] = _sign(rng)
        # Command neurons that drive no motor neuron get one motor target.
        for s in command:
            if not adjacency[s, motor].any():
                adjacency[s, rng.choice(motor)] = _sign(rng)
        return Wiring(adjacency, sensory, m_n, layers=[inter, command, motor])

    def _check(self, inputs: int) -> None:
        i_n, c_n, m_n = self.inter_neurons, self.command_neurons, self.motor_neurons
        if min(i_n, c_n, m_n, inputs) < 1:
            raise ValueError("every layer and the input need at least one neuron")
        for name, value, limit in (
            ("sensory_fanout", self.sensory_fanout, i_n),
            ("inter_fanout", self.inter_fanout, c_n),
            ("motor_fanin", self.motor_fanin, c_n),
        ):
            if not 1 <= value <= limit:
                raise ValueError(f"NCP {name}={value} must be in 1..{limit}")


def _sign(rng: np.random.Generator) -> float:
    """+1 (excitatory) with probability 2/3, else -1."""
    return 1.0 if rng.random() < 2 / 3 else -1.0


def _fan_out(rng: np.random.Generator, matrix: np.ndarray, sources: list[int], targets: list[int], fanout: int) -> None:
    """Synapses from each source to ``fanout`` random targets; targets nobody reached get an average target's fan-in."""
    for s in sources:
        for t in rng.choice(targets, size=fanout, replace=False):
            matrix[s, t] = _sign(rng)
    fanin = max(1, round(len(sources) * fanout / len(targets)))
    for t in targets:
        if not matrix[sources, t].any():
            for s in rng.choice(sources, size=min(fanin, len(sources)), replace=False):
                matrix[s, t] = _sign(rng)


def auto_ncp(units: int, outputs: int, sparsity: float = 0.5, seed: int = 22222) -> NCP:
    """An NCP with ``units`` neurons of which ``outputs`` are motor neurons, at the given sparsity.

    40% of the non-motor neurons are command neurons, the rest inter neurons; fan-outs scale with ``1 - sparsity``.
    """
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
    if units < outputs + 2:
        raise ValueError(f"auto_ncp needs at least outputs + 2 = {outputs + 2} units, got {units}")
    density = 1.0 - sparsity
    hidden = units - outputs
    command = max(1, round(0.4 * hidden))
    inter = hidden - command
    return NCP(
        inter_neurons=inter,
        command_neurons=command,
        motor_neurons=outputs,
        sensory_fanout=max(1, round(inter * density)),
        inter_fanout=max(1, round(command * density)),
        recurrent_command_synapses=max(1, round(command * density * 2)),
        motor_fanin=max(1, round(command * density)),
        seed=seed,
    )
