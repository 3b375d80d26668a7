"""The benchmark's arithmetic: percentiles, the median over rounds and the ratio table."""

from __future__ import annotations

from bench.load import Figure, percentile
from bench.run import combine, table


def test_percentile_picks_the_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 0.5) in (50.0, 51.0)
    assert percentile(samples, 0.99) == 99.0
    assert percentile([7.0], 0.95) == 7.0


def test_combine_takes_the_median_and_skips_missing_values() -> None:
    rounds = [
        {"send": Figure(10.0, "msg/s", "higher"), "sync": Figure(None, "ms", "lower", "no /sync")},
        {"send": Figure(30.0, "msg/s", "higher"), "sync": Figure(None, "ms", "lower", "no /sync")},
        {"send": Figure(20.0, "msg/s", "higher"), "sync": Figure(None, "ms", "lower", "no /sync")},
    ]
    combined = combine(rounds)
    assert combined["send"].value == 20.0
    assert combined["sync"].value is None and combined["sync"].note == "no /sync"


def test_table_states_ratio_and_direction() -> None:
    results = {
        "ranvier": {
            "send": Figure(100.0, "msg/s", "higher"),
            "latency": Figure(5.0, "ms", "lower"),
            "rss": Figure(200.0, "MiB", "lower"),
            "sync": Figure(None, "ms", "lower", "no /sync"),
        },
        "synapse": {
            "send": Figure(20.0, "msg/s", "higher"),
            "latency": Figure(20.0, "ms", "lower"),
            "rss": Figure(100.0, "MiB", "lower"),
            "sync": Figure(8.0, "ms", "lower"),
        },
    }
    rows = table(results).splitlines()
    assert rows[2] == "| send | 100 msg/s | 20.0 msg/s | 5.00 | 5.0x better |"
    assert rows[3] == "| latency | 5.00 ms | 20.0 ms | 0.25 | 4.0x better |"
    assert rows[4] == "| rss | 200 MiB | 100 MiB | 2.00 | 2.0x worse |"
    assert rows[5] == "| sync | n/a (no /sync) | 8.00 ms | - | - |"


def test_table_for_one_server_has_no_ratios() -> None:
    rows = table({"ranvier": {"send": Figure(50.0, "msg/s", "higher")}}).splitlines()
    assert rows[2] == "| send | 50.0 msg/s | - | - | - |"
