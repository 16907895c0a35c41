"""bench.e2e --versus: the order of the two configurations in each round and the figures
a comparison is judged on (bench/versus.py). Pure."""

from __future__ import annotations

from typing import Any

from bench import versus


def _run(config: str, n: int, files_per_s: float, cpu_seconds: float) -> dict[str, Any]:
    return {
        "config": config,
        "round": n,
        "files_per_s": files_per_s,
        "done": 1000,
        "failed": 0,
        "cpu_seconds_supervisor": 0.0,
        "cpu_seconds_workers": cpu_seconds,
        "cpu_seconds_db_backends": 0.0,
        "other_load_cores": 0.1,
    }


def test_every_other_round_runs_the_variant_first() -> None:
    assert [versus.order(n) for n in range(3)] == [
        ("base", "versus"),
        ("versus", "base"),
        ("base", "versus"),
    ]


def test_the_ratio_is_taken_within_each_round_then_its_median() -> None:
    runs = [
        _run("base", 1, 1000.0, 1.0),
        _run("versus", 1, 900.0, 1.25),
        _run("versus", 2, 450.0, 2.5),  # a round the host slowed: both halves slowed
        _run("base", 2, 500.0, 2.0),
        _run("base", 3, 1100.0, 1.0),
        _run("versus", 3, 880.0, 1.0),
    ]
    found = versus.summary(runs, ["EXTRACT_SECOND_READER=true"])
    assert found["settings"] == ["EXTRACT_SECOND_READER=true"]
    assert found["ratio_by_round"] == [0.9, 0.9, 0.8]
    assert found["ratio_median"] == 0.9
    assert found["base"]["median_files_per_s"] == 1000.0
    assert found["versus"]["median_files_per_s"] == 880.0
    assert found["base"]["cpu_us_per_file"] == [1000.0, 2000.0, 1000.0]
    assert found["cpu_ratio_by_round"] == [0.8, 0.8, 1.0]
    assert found["cpu_ratio_median"] == 0.8


def test_a_round_left_unfinished_gives_no_ratio() -> None:
    found = versus.summary([_run("base", 1, 1000.0, 1.0)], [])
    assert found["ratio_by_round"] == [] and found["ratio_median"] is None
    assert found["versus"]["median_files_per_s"] is None
