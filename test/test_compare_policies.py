"""The car comparison's summary (bench/compare_policies.py): episodes to cells, the conditions shown, the goals."""

from __future__ import annotations

import pytest
from bench_scripts import bench_module


@pytest.fixture(scope="module")
def compare():
    yield from bench_module("compare_policies")


def episode(policy: str, condition: str, reward: float, seed: int = 0, track: int = 2000) -> dict:
    return {"policy": policy, "model": f"runs/{policy}_s{seed}/best", "model_seed": seed, "condition": condition,
            "track": track, "reward": reward, "laps": int(reward > 900), "tiles_visited": 1, "tiles_total": 1,
            "off_track_s": 0.0, "steps": 1000, "wall_s": 1.0}


def test_the_table_shows_the_conditions_driven_and_judges_winter_against_clean(compare, tmp_path):
    rows = [episode("Demonstrator", "clean", 913.0)]
    for seed, (clean, winter, randomize) in enumerate([(910.0, 890.0, 300.0), (906.0, 880.0, 200.0)]):
        rows += [episode("LTC-NCP + DAgger", "clean", clean, seed), episode("LTC-NCP + DAgger", "winter", winter, seed),
                 episode("LTC-NCP + DAgger", "randomize", randomize, seed)]
    rows += [episode("CNN", "clean", 800.0), episode("CNN", "winter", 100.0), episode("CNN", "randomize", 260.0)]
    table = compare.aggregate(rows)
    assert compare.measured_conditions(table) == ["clean", "winter", "randomize"]
    assert table["LTC-NCP + DAgger"]["winter"]["mean"] == 885.0
    assert table["LTC-NCP + DAgger"]["winter"]["seed_std"] == 5.0

    info = {"LTC-NCP + DAgger": {"recurrent": 1084, "total": 78716, "latency_ms": 0.9}}
    goal = compare.goals(table, info)
    assert goal["policy"] == "LTC-NCP + DAgger"
    assert goal["clean >= 905"] is True and goal["winter >= 880"] is True and goal["clean >= 925"] is False
    assert goal["noise=0.1 >= 900"] is None  # not driven
    # judged on the perturbations both drove: ahead of the CNN in winter (885 > 100), behind it under randomize
    assert goal["ahead of CNN under winter, randomize"] is False

    text = compare.write_table(tmp_path / "results.md", table, info, goal,
                               {"tracks": [2000, 2019], "assign": "all", "seeds_per_policy": {}})
    header = text.splitlines()[0]
    assert header.endswith("| clean | winter | randomize |") and "noise" not in header and "drop" not in header
    assert "885.0 +- 5.0 [5] (0/2)" in text
    assert "winter >= 880: met" in text and "clean >= 925: MISSED" in text
