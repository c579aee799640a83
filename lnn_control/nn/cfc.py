"""Closed-form continuous-time (CfC) cell on a wiring (Hasani et al., Nature Machine Intelligence 2022).

The wiring's layers (inter -> command -> motor for an NCP) are computed in order within one step; layer ``l`` sees
the new state of layer ``l-1`` and its own previous state. With ``u = [layer input, own state]`` and masked
weights (the wiring's synapses; a layer always sees all of its own neurons)::

    f = W_f u + b_f,   g = W_g u + b_g,   t = sigmoid((W_a u + b_a) dt + W_b u + b_b)
    default:  h = tanh(f) (1 - t) + t tanh(g)        (gated)
    no_gate:  h = tanh(f) + t tanh(g)
    pure:     h = A - A exp(-dt (|w_tau| + |f|)) f    (the direct closed-form solution)

The time gates ``W_a``, ``W_b`` are dense over the layer input, as in the reference implementation. The state is
the layers' neurons concatenated in layer order; the outputs are the last (motor) layer, mapped affinely.

Input normalisation (``input_norm=True``, what :class:`~lnn_control.nn.policy.Policy` builds): the sensory input is
divided by its root mean square over the inputs, ``x / sqrt(mean(x^2) + eps)``, before the first layer. Without it
the cell is the reference's, and behind a learned feature extractor it can die: every gate of the first layer is a
tanh or sigmoid of an unbounded input, and the extractor's output scale is free. On CarRacing (conv head, AdamW at
3e-3) the features grew 1.5 to 2.5 times per step from step 5 (Adam moves every conv weight by about the learning
rate, a large relative step, and the five layers compound): std 0.05 at init, 10 after one epoch, 280 after three.
By then the first layer's pre-activations were in the hundreds (99 % beyond +-3), its outputs the same for every
frame, and the policy predicted the mean for the rest of the run. Divided by its RMS, the input keeps the
first layer near unit scale whatever the extractor does, and outputs and gradients do not depend on that scale.
It adds no parameter.

Parameter count net of masks: masked ``W_f`` and ``W_g`` entries are not counted; biases, time gates and (pure)
``w_tau``, ``A`` are. The affine output mapping is counted in :meth:`CfCCell.parameter_count` only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from lnn_control.nn.core import INPUT_NORM_EPS, RecurrentCore
from lnn_control.nn.wiring import Wiring

MODES = ("default", "pure", "no_gate")


class _Layer(nn.Module):
    """One layer of the wired CfC; its four linear maps are one matrix product."""

    def __init__(self, in_features: int, hidden: int, mode: str, mask: np.ndarray, generator: torch.Generator | None):
        super().__init__()
        self.hidden = hidden
        self.mode = mode
        fan = in_features + hidden
        maps = 1 if mode == "pure" else 4
        # Xavier-uniform weights and PyTorch-Linear-style biases, like nn.Linear after xavier init.
        bound = math.sqrt(6.0 / (fan + hidden))
        self.weight = nn.Parameter((torch.rand(maps * hidden, fan, generator=generator) * 2 - 1) * bound)
        bias_bound = 1.0 / math.sqrt(fan)
        self.bias = nn.Parameter((torch.rand(maps * hidden, generator=generator) * 2 - 1) * bias_bound)
        full = torch.ones(maps * hidden, fan)
        masked_rows = 1 if mode == "pure" else 2
        full[: masked_rows * hidden] = torch.from_numpy(np.abs(mask).T.astype(np.float32)).repeat(masked_rows, 1)
        self.register_buffer("mask", full)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden))
            self.A = nn.Parameter(torch.ones(1, hidden))
        else:  # empty buffers keep the attributes TorchScript sees; they are not parameters, so nothing goes unused
            self.register_buffer("w_tau", torch.zeros(0), persistent=False)
            self.register_buffer("A", torch.zeros(0), persistent=False)

    def step(self, inp: Tensor, h: Tensor, dt: Tensor) -> Tensor:
        u = torch.cat([inp, h], dim=1)
        pre = torch.addmm(self.bias, u, (self.weight * self.mask).t())
        n = self.hidden
        if self.mode == "pure":
            return self.A - self.A * torch.exp(-dt * (torch.abs(self.w_tau) + torch.abs(pre))) * pre
        fg = torch.tanh(pre[:, : 2 * n])
        f, g = fg[:, :n], fg[:, n:]
        t = torch.sigmoid(torch.addcmul(pre[:, 3 * n :], pre[:, 2 * n : 3 * n], dt))
        if self.mode == "no_gate":
            return torch.addcmul(f, t, g)
        return torch.addcmul(f, t, g - f)

    def counted(self) -> int:
        extra = self.w_tau.numel() + self.A.numel()
        return int(self.mask.sum().item()) + self.bias.numel() + extra


class CfCCell(RecurrentCore):
    """CfC on a :class:`Wiring` with ``mode`` in ``default`` (gated), ``pure`` (closed form) or ``no_gate``.

    ``input_norm`` divides the input by its RMS first (see the module doc); off, the cell equals ncps' WiredCfCCell.
    """

    def __init__(
        self, wiring: Wiring, mode: str = "default", seed: int | None = None, input_norm: bool = False
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"CfC mode must be one of {MODES}, got {mode!r}")
        self.wiring = wiring
        self.mode = mode
        self.input_norm = bool(input_norm)
        self.input_norm_eps = INPUT_NORM_EPS  # an attribute: TorchScript does not read module globals
        self.input_size = wiring.input_dim
        self.output_size = len(wiring.layers[-1])
        self.state_size = wiring.units
        if sorted(wiring.layers[-1]) != list(range(wiring.output_dim)):
            raise ValueError("the wiring's last layer must be its motor neurons 0..output_dim-1")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        layers = []
        in_features = wiring.input_dim
        previous: list[int] | None = None
        for neurons in wiring.layers:
            if previous is None:
                synapses = wiring.sensory_adjacency[:, neurons]
            else:
                synapses = wiring.adjacency[np.ix_(previous, neurons)]
            mask = np.concatenate([synapses, np.ones((len(neurons), len(neurons)), np.float32)], axis=0)
            layers.append(_Layer(in_features, len(neurons), mode, mask, gen))
            in_features = len(neurons)
            previous = neurons
        self.layers = nn.ModuleList(layers)
        self.sizes: list[int] = [len(n) for n in wiring.layers]
        self.output_w = nn.Parameter(torch.ones(self.output_size))
        self.output_b = nn.Parameter(torch.zeros(self.output_size))

    def step(self, x: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """One step; ``dt`` (B, 1) in model time units."""
        states = torch.split(h, self.sizes, dim=1)
        inp = x
        if self.input_norm:
            inp = x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.input_norm_eps)
        new = []
        for i, layer in enumerate(self.layers):
            inp = layer.step(inp, states[i], dt)
            new.append(inp)
        return inp * self.output_w + self.output_b, torch.cat(new, dim=1)

    def recurrent_parameter_count(self) -> int:
        """Parameters of the layers, net of masks."""
        return sum(layer.counted() for layer in self.layers)

    def parameter_count(self) -> int:
        """Recurrent parameters plus the affine output mapping."""
        return self.recurrent_parameter_count() + 2 * self.output_size
