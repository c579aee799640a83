"""The drone study's summary (bench/compare_drone_policies.py): rows to means over seeds, and the goals judged."""

from __future__ import annotations

import pytest
from bench_scripts import bench_module


@pytest.fixture(scope="module")
def study():
    yield from bench_module("compare_drone_policies")


def row(policy: str, condition: str, success: int, episodes: int = 50, collisions: int = 0) -> dict:
    return {"policy": policy, "condition": condition, "episodes": episodes, "success": success,
            "collisions": collisions, "time_to_target_s": 7.0 if success else None, "final_distance_m": 2.0}


def test_the_largest_run_of_a_cell_counts_once(study):
    rows = [row("cfc_s0", "summer", 10, episodes=20), row("cfc_s0", "summer", 40), row("cfc_s1", "summer", 30)]
    kept = study._largest_rows(rows)
    assert sorted((r["policy"], r["episodes"], r["success"]) for r in kept) == [("cfc_s0", 50, 40),
                                                                                 ("cfc_s1", 50, 30)]
    cell = study._summary(kept)["cfc"]["summer"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx(0.7)
    assert cell["std"] == pytest.approx(0.1)


def test_goals_name_the_ncp_and_what_it_missed(study):
    rows = [row("demonstrator", d, 50) for d in study.DOMAINS]
    rows += [row("cfc_s0", d, 48 if d == "summer" else 45) for d in study.DOMAINS]
    rows += [row("lstm_s0", d, 40) for d in study.DOMAINS]
    rows += [row("cnn_s0", d, 46 if d == "winter" else 30) for d in study.DOMAINS]
    table = study._summary(rows)
    sizes = {"cfc": {"recurrent": 2000}, "lstm": {"recurrent": 25088}}
    judged = study.goals(table, sizes)
    assert judged["demonstrator >= 95% in every domain"]["met"]
    assert judged["cfc >= 90% in summer"] == {"value": 0.96, "met": True}
    assert judged["cfc >= 80% in every shifted domain"]["met"]
    assert judged["cfc ahead of lstm in every shifted domain"]["met"]
    behind_cnn = judged["cfc ahead of cnn in every shifted domain"]
    assert not behind_cnn["met"] and "winter" not in behind_cnn["value"]
    assert judged["cfc recurrent parameters <= 1/10 of lstm's"]["met"]


def test_the_change_compares_the_same_training_seeds(study):
    before = [row("cfc_s0", "summer", 20), row("cfc_s1", "summer", 30), row("cfc_s0", "fall", 10),
              row("lstm_s0", "summer", 25)]
    now = [row("cfc_s0", "summer", 35), row("cfc_s0", "fall", 5), row("cnn_s0", "summer", 50)]
    delta = study.change(now, before)
    assert set(delta) == {"cfc"}  # only policies measured both times
    assert delta["cfc"]["summer"] == {"before": 0.4, "now": 0.7, "n": 1}  # cfc_s1 was not measured again
    lines = study.change_lines(delta, ["summer", "fall"], "runs/drone")
    assert "runs/drone" in lines[1]
    body = [line for line in lines if line.startswith("| cfc")]
    assert body == ["| cfc (1 seed) | 40% -> 70% (+30) | 20% -> 10% (-10) |"]
    assert study.change_lines({}, ["summer"], "x") == []
