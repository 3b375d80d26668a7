"""The sliding sync benchmark at tiny sizes against the real server on both engines, so
`bench.run --sliding-sync` keeps working: the rooms are built, every figure is measured, and
the answers it times are the right ones (the benchmark checks them as it goes)."""

from __future__ import annotations

from bench.sliding_sync import SlidingSyncBench, SlidingSyncSizes
from tests.integration.homeserver import RunningServer

TINY = SlidingSyncSizes(rooms=25, messages_per_room=2, initial_runs=2, incremental_samples=2)


async def test_every_sliding_sync_figure_is_measured(server: RunningServer) -> None:
    log: list[str] = []
    figures = await SlidingSyncBench(server.url, "ranvier", TINY, log.append).run()

    assert not [line for line in log if "no simplified sliding sync" in line]
    assert set(figures) == {
        "build the rooms (setup, not a target)",
        "first sliding sync, 25 rooms, range 0-19, timeline 1 p50",
        "first sliding sync, 25 rooms, range 0-19, timeline 1, cold (the first)",
        "new message to a waiting sliding sync p50",
        "incremental sliding sync, one new message p50",
    }
    for key, figure in figures.items():
        assert figure.value is not None and figure.value > 0, key
