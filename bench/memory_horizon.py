"""How far back a recurrent policy's state matters: validation error with the state carried through whole flights
against the state reset every K frames.

    python bench/memory_horizon.py --bags runs/drone/data/val --models models/ltc_ncp_drone runs/drone/ltc_s0/best

Each model reads the bags with its own pairing, preprocessing and timing (the run's dataset section, stored in the
checkpoint), runs every segment from a zero state once whole and once cut into pieces of K frames (each from a zero
state, as training's windows start), and prints the normalised mean squared error of the action's outputs over the
same frames, by position in the flight and in all, with the ratio reset / whole. A ratio near 1 at K means the state
holds nothing older than K frames that the next commands need; a ratio well above 1 at the training window says the
flights need more memory than training shows. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lnn_control.data.bags import discover_bags
from lnn_control.data.dataset import CachedEpisode, DatasetConfig, load_episodes
from lnn_control.nn import checkpoint
from lnn_control.nn.policy import Policy
from lnn_control.timing import segments as timing_segments

BANDS = (0, 8, 16, 32, 64, 128, 1 << 30)


def segments(episodes: list[CachedEpisode], config: DatasetConfig) -> list[tuple[CachedEpisode, np.ndarray, int, int]]:
    """Every segment (a run of frames without a timing reset) as (episode, its dts, first frame, end)."""
    out = []
    for episode in episodes:
        dt, bounds = timing_segments(episode.stamps, config.timing)
        out.extend((episode, dt, a, b) for a, b in bounds)
    return out


@torch.no_grad()
def frame_errors(policy: Policy, segment: tuple[CachedEpisode, np.ndarray, int, int], piece: int) -> np.ndarray:
    """Normalised squared error per frame of one segment, the state reset every ``piece`` frames (0: never)."""
    episode, dt, a, b = segment
    frames = torch.from_numpy(np.array(episode.frames[a:b]))[None]
    dts = torch.from_numpy(dt[a:b].reshape(1, -1, 1).copy())
    target = policy.normalise_targets(torch.from_numpy(np.array(episode.targets[a:b], dtype=np.float32))[None])
    step = piece or (b - a)
    preds = [policy(frames[:, s : s + step], dts[:, s : s + step], None, True)[0] for s in range(0, b - a, step)]
    return ((torch.cat(preds, dim=1).float() - target) ** 2).mean(-1)[0].numpy()


def horizon(policy: Policy, episodes: list[CachedEpisode], config: DatasetConfig, pieces: list[int]) -> dict:
    """Mean error per band of flight position, whole flights (piece 0) and each reset period."""
    parts = segments(episodes, config)
    result = {}
    for piece in [0, *pieces]:
        errors = [frame_errors(policy, s, piece) for s in parts]
        bands = {
            f"{lo}-{hi if hi < BANDS[-1] else 'end'}": float(np.mean(np.concatenate([e[lo:hi] for e in errors])))
            for lo, hi in zip(BANDS[:-1], BANDS[1:], strict=True)
            if any(len(e) > lo for e in errors)
        }
        result["whole" if piece == 0 else f"reset {piece}"] = {"all": float(np.mean(np.concatenate(errors))), **bands}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", nargs="+", required=True, help="bag folders or parents (validation flights)")
    parser.add_argument("--models", nargs="+", required=True, help="checkpoints (path without extension)")
    parser.add_argument("--resets", nargs="+", type=int, default=[1, 4, 16], help="reset periods K in frames")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bags = discover_bags(args.bags)
    report = {}
    for path in args.models:
        policy = checkpoint.load(path)
        config = DatasetConfig.from_dict(checkpoint.read_config(path)["metadata"].get("dataset") or {})
        episodes, failures = load_episodes(bags, config, progress=False)
        for failure in failures:
            print(f"{path}: skipping {failure.bag}: {failure.error}")
        rows = horizon(policy, episodes, config, args.resets)
        whole = rows["whole"]["all"]
        print(f"{path} ({policy.config.core}, {len(episodes)} bags)")
        for name, row in rows.items():
            bands = "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "all")
            print(f"  {name:>9}: {row['all']:.3f} (x{row['all'] / whole:.3f} of whole)  by frame: {bands}")
        report[str(Path(path))] = {"core": policy.config.core, **rows}
    print(json.dumps({"bench": "memory_horizon", "models": report}))


if __name__ == "__main__":
    main()
