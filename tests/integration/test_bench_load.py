"""The benchmark's load generator against the real server on both engines, at tiny sizes.

This keeps bench/ working as the server grows: every scenario must complete over HTTP and
produce a figure, or say plainly that the server lacks the endpoint it needs.
"""

from __future__ import annotations

from bench.load import DELIVERY, SCENARIOS, Sizes, run_against
from tests.integration.homeserver import RunningServer

TINY = Sizes(
    register_users=2,
    create_rooms=2,
    sequential_messages=10,
    concurrent_senders=3,
    messages_per_sender=2,
    sync_rooms=3,
    sync_messages_per_room=2,
    sync_members_per_room=2,
    sync_runs=1,
    delivery_samples=2,
    joiners=4,
    pagination_events=25,
    pagination_page=10,
)


async def test_every_scenario_yields_its_figures(server: RunningServer) -> None:
    log: list[str] = []
    figures = await run_against(server.url, TINY, log=log.append)

    assert [line.strip() for line in log if "skipped" not in line] == SCENARIOS
    measured = {k: f for k, f in figures.items() if f.value is not None}
    assert "send 10 in sequence" in measured
    assert any(key.startswith("paginate ") for key in measured)
    assert "4 users join one room (10 at a time)" in measured
    assert "3 senders, one room" in measured and "3 senders, own rooms" in measured
    assert "register (10 concurrent)" in measured and "createRoom (sequential)" in measured
    for figure in measured.values():
        assert figure.value is not None and figure.value > 0
    # the sync scenarios run once /sync answers, and otherwise say why they have no figure
    for key in ("initial sync 3 rooms x 2 msgs p50", f"{DELIVERY} p50"):
        figure = figures[key]
        assert figure.value is not None or figure.note == "no /sync"


async def test_one_scenario_can_run_alone(server: RunningServer) -> None:
    figures = await run_against(server.url, TINY, only=["create_rooms"], log=lambda _: None)
    assert set(figures) == {"createRoom (sequential)", "createRoom p50"}
