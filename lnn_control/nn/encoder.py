"""The compact convolutional head shared by every policy (in the style of the NCP paper's perception module).

Five convolutions (24, 36, 48, 64, 8 filters; kernels 5, 5, 3, 3, 3; strides 2, 2, 2, 1, 1; ReLU), then one
linear map of the flattened last feature map to ``features`` outputs (32 by default, the recurrent core's sensory
inputs). At 96x96 input the convolutions hold 71k parameters and the reduction 9k. Input normalisation lives here:
frames go in as uint8 ``(B, H, W, 3)`` RGB, exactly what the decoder and preprocessing produce.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: (out_channels, kernel, stride) of the five convolutions.
CONV_LAYERS: tuple[tuple[int, int, int], ...] = ((24, 5, 2), (36, 5, 2), (48, 3, 2), (64, 3, 1), (8, 3, 1))
#: Smallest height and width the five convolutions accept.
MIN_SIZE = 53


class ConvHead(nn.Module):
    """uint8 RGB frames -> features; normalisation with per-channel mean and std buffers."""

    def __init__(
        self,
        height: int,
        width: int,
        features: int = 32,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.25, 0.25, 0.25),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.height, self.width, self.features = height, width, features
        layers: list[nn.Module] = []
        channels = 3
        for out, kernel, stride in CONV_LAYERS:
            layers += [nn.Conv2d(channels, out, kernel, stride), nn.ReLU()]
            channels = out
        self.convs = nn.Sequential(*layers)
        if min(height, width) < MIN_SIZE:
            raise ValueError(f"input {height}x{width} is too small for the conv head (at least {MIN_SIZE}x{MIN_SIZE})")
        with torch.no_grad():
            shape = self.convs(torch.zeros(1, 3, height, width)).shape
        self.flat = int(shape[1] * shape[2] * shape[3])
        self.dropout = nn.Dropout(dropout)
        self.reduce = nn.Linear(self.flat, features)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(std).view(1, 3, 1, 1) * 255.0))

    def normalise(self, frames: Tensor) -> Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W), normalised per channel."""
        x = frames.permute(0, 3, 1, 2).to(self.mean.dtype)
        return (x - self.mean) * self.inv_std

    def features_from_normalised(self, x: Tensor) -> Tensor:
        """Normalised (B, 3, H, W) -> features (B, F); saliency and noise tests enter here."""
        return self.reduce(self.dropout(self.convs(x).flatten(1)))

    def forward(self, frames: Tensor) -> Tensor:
        """uint8 frames (B, H, W, 3) -> features (B, F)."""
        if frames.shape[-3] != self.height or frames.shape[-2] != self.width or frames.shape[-1] != 3:
            raise ValueError(
                f"frames must be (B, {self.height}, {self.width}, 3), got {frames.shape}"
            )
        return self.features_from_normalised(self.normalise(frames))

    def conv_parameter_count(self) -> int:
        """Parameters of the five convolutions."""
        return sum(p.numel() for p in self.convs.parameters())

    def parameter_count(self) -> int:
        """All parameters of the head."""
        return sum(p.numel() for p in self.parameters())
