"""The interface every recurrent core shares: ``step(x, h, dt) -> (y, h)`` and a sequence ``forward``.

Time ``dt`` is elapsed time in the core's own units (the policy converts seconds, see ``PolicyConfig.dt_unit_s``),
shaped ``(B, 1)`` for one step or ``(B, T, 1)`` for a sequence (which also accepts a float or a ``(B, T)`` tensor,
broadcast). Every batch size works, and gradients flow through ``dt``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Added to the mean square of a cell's input under ``input_norm`` (CfC, LTC); a zero input stays zero.
INPUT_NORM_EPS = 1e-12


def sequence_dt(dt: Tensor | float | None, x: Tensor) -> Tensor:
    """``dt`` as a ``(B, T, 1)`` tensor matching ``x`` (B, T, I); ``None`` means 1.0 every step."""
    batch, steps = x.shape[0], x.shape[1]
    if dt is None:
        dt = 1.0
    if not isinstance(dt, Tensor):
        return torch.full((batch, steps, 1), float(dt), dtype=x.dtype, device=x.device)
    dt = dt.to(dtype=x.dtype)
    if dt.dim() == 0:
        dt = dt.reshape(1, 1, 1)
    elif dt.dim() == 2:
        dt = dt.unsqueeze(-1)
    if dt.dim() != 3 or dt.shape[-1] != 1:
        raise ValueError(f"dt for a sequence must be (B, T, 1) or (B, T), got {tuple(dt.shape)}")
    return dt.expand(batch, steps, 1)


class RecurrentCore(nn.Module):
    """Base class: subclasses define ``step`` and may override ``forward`` with a faster equivalent.

    Subclasses set the integer attributes ``input_size``, ``output_size`` and ``state_size``.
    """

    def initial_state(self, batch: int = 1, device: torch.device | None = None) -> Tensor:
        """The zero state, shape ``(batch, state_size)``."""
        return torch.zeros(batch, self.state_size, device=device)

    def step(self, x: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``x`` (B, I), ``h`` (B, S), ``dt`` (B, 1) -> output (B, O), new state (B, S)."""
        raise NotImplementedError

    @torch.jit.unused
    def forward(self, x: Tensor, dt: Tensor | float | None = None, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A sequence ``x`` (B, T, I) with ``dt`` (B, T, 1) -> outputs (B, T, O), last state (B, S).

        The loop of :meth:`step`; training uses it, exported single steps do not (hence ``jit.unused``).
        """
        dt = sequence_dt(dt, x)
        h = self.initial_state(x.shape[0], x.device).to(x.dtype) if h0 is None else h0
        outputs = []
        for t in range(x.shape[1]):
            y, h = self.step(x[:, t], h, dt[:, t])
            outputs.append(y)
        return torch.stack(outputs, dim=1), h

    def recurrent_parameter_count(self) -> int:
        """Trainable parameters of the recurrent part, counting masked-out weights as absent."""
        raise NotImplementedError

    def parameter_count(self) -> int:
        """All trainable parameters of this core, net of masks."""
        raise NotImplementedError
