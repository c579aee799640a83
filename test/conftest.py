"""Suite-wide settings: one torch thread per test process.

The machine (and CI) has two cores; two OpenMP threads on a busy second core made the conv head 20x slower in a
measurement here (27 ms vs 1.5 ms), so tests run single-threaded like the nodes do by default.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
