"""The in-memory answer to "which keys changed after position N"."""

from __future__ import annotations

from ranvier.streams.change_log import ChangeLog


def test_rooms_with_events_after_the_position_are_reported() -> None:
    changes = ChangeLog(floor=10)
    changes.record("!a", 11)
    changes.record("!b", 12)
    changes.record("!a", 13)
    assert changes.changed_since(["!a", "!b", "!c"], 10) == {"!a", "!b"}
    assert changes.changed_since(["!a", "!b", "!c"], 12) == {"!a"}
    assert changes.changed_since(["!a", "!b", "!c"], 13) == set()
    # only the rooms asked about
    assert changes.changed_since(["!b"], 10) == {"!b"}


def test_before_the_floor_the_answer_is_unknown() -> None:
    changes = ChangeLog(floor=10)
    changes.record("!a", 11)
    assert changes.changed_since(["!a"], 9) is None
    assert changes.changed_since(["!a"], 0) is None


def test_forgetting_rooms_raises_the_floor_so_no_change_is_missed() -> None:
    changes = ChangeLog(floor=0, max_keys=4)
    for number in range(1, 6):
        changes.record(f"!r{number}", number)
    # the oldest rooms were forgotten: a question from before them is unknown
    assert changes.floor >= 1
    assert changes.changed_since([f"!r{n}" for n in range(1, 6)], 0) is None
    # a question from at or after the floor still sees every room that moved since
    floor = changes.floor
    moved = changes.changed_since([f"!r{n}" for n in range(1, 6)], floor)
    assert moved == {f"!r{n}" for n in range(floor + 1, 6)}
