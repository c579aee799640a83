"""Baseline cores with the same interface as the liquid cells: an LSTM and a feed-forward (memoryless) head.

The LSTM is discrete-time: it ignores ``dt`` (that is the point of the comparison). Its state is ``[h, c]``
concatenated, so every core carries one state tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lnn_control.nn.core import RecurrentCore


class LSTMCore(RecurrentCore):
    """LSTM with ``hidden`` units and a linear readout to ``outputs``."""

    def __init__(self, inputs: int, hidden: int = 64, outputs: int = 2) -> None:
        super().__init__()
        self.input_size, self.output_size, self.hidden = inputs, outputs, hidden
        self.state_size = 2 * hidden
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, outputs)

    def step(self, x: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """One step; ``dt`` is ignored."""
        hx, cx = h[:, : self.hidden], h[:, self.hidden :]
        gates = (
            x @ self.lstm.weight_ih_l0.t() + self.lstm.bias_ih_l0
            + hx @ self.lstm.weight_hh_l0.t() + self.lstm.bias_hh_l0
        )
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * cx + torch.sigmoid(i) * torch.tanh(g)
        hx = torch.sigmoid(o) * torch.tanh(c)
        return self.readout(hx), torch.cat([hx, c], dim=1)

    @torch.jit.unused
    def forward(self, x: Tensor, dt: Tensor | float | None = None, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A sequence through the fused LSTM kernel; equal to looping :meth:`step`."""
        if h0 is None:
            out, (hn, cn) = self.lstm(x)
        else:
            state = (h0[:, : self.hidden].unsqueeze(0).contiguous(), h0[:, self.hidden :].unsqueeze(0).contiguous())
            out, (hn, cn) = self.lstm(x, state)
        return self.readout(out), torch.cat([hn[0], cn[0]], dim=1)

    def recurrent_parameter_count(self) -> int:
        """The LSTM's weights and biases."""
        return sum(p.numel() for p in self.lstm.parameters())

    def parameter_count(self) -> int:
        """LSTM plus readout."""
        return sum(p.numel() for p in self.parameters())


class FeedForwardCore(RecurrentCore):
    """No memory: features -> hidden (ReLU) -> outputs. Its state has zero width."""

    def __init__(self, inputs: int, hidden: int = 64, outputs: int = 2) -> None:
        super().__init__()
        self.input_size, self.output_size = inputs, outputs
        self.state_size = 0
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def step(self, x: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """One step; ``h`` and ``dt`` are ignored."""
        return self.net(x), h

    @torch.jit.unused
    def forward(self, x: Tensor, dt: Tensor | float | None = None, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Every step at once."""
        h = torch.zeros(x.shape[0], 0, dtype=x.dtype, device=x.device) if h0 is None else h0
        return self.net(x), h

    def recurrent_parameter_count(self) -> int:
        """None: there is no recurrence."""
        return 0

    def parameter_count(self) -> int:
        """The two linear layers."""
        return sum(p.numel() for p in self.parameters())
