"""Camera bytes -> HxWx3 uint8 RGB, and the crop/resize every path applies (no ROS imports).

The nodes, the bag reader and the simulator all hand raw message fields here, so a frame is decoded and
preprocessed the same way on the robot, in replay and in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    """Crop (pixels removed from each edge of the decoded frame), then resize to ``height`` x ``width``."""

    height: int = 96
    width: int = 96
    crop_top: int = 0
    crop_bottom: int = 0
    crop_left: int = 0
    crop_right: int = 0

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"preprocess.{name} must be positive, got {getattr(self, name)}")
        for name in ("crop_top", "crop_bottom", "crop_left", "crop_right"):
            if getattr(self, name) < 0:
                raise ValueError(f"preprocess.{name} must be >= 0, got {getattr(self, name)}")


def preprocess(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Crop and resize an HxWx3 uint8 RGB frame to ``config.height`` x ``config.width`` (uint8, contiguous)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 frame, got shape {rgb.shape} dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    top, bottom = config.crop_top, h - config.crop_bottom
    left, right = config.crop_left, w - config.crop_right
    if bottom <= top or right <= left:
        raise ValueError(
            f"crop (top={config.crop_top}, bottom={config.crop_bottom}, left={config.crop_left}, "
            f"right={config.crop_right}) leaves nothing of a {w}x{h} frame"
        )
    cropped = rgb[top:bottom, left:right]
    if cropped.shape[0] == config.height and cropped.shape[1] == config.width:
        return np.ascontiguousarray(cropped)
    interp = cv2.INTER_AREA if cropped.shape[0] > config.height else cv2.INTER_LINEAR
    return cv2.resize(cropped, (config.width, config.height), interpolation=interp)
