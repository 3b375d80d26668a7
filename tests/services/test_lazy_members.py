"""What a lazy-loading device holds, by token (services/sync/lazy_members.py)."""

from __future__ import annotations

from ranvier.services.sync.lazy_members import LazyMemberMemory

ME = "@me:hs"


def test_a_token_holds_what_its_since_held_and_what_was_sent() -> None:
    memory = LazyMemberMemory()
    memory.remember(ME, "D", None, "t1", ["$a"])
    memory.remember(ME, "D", "t1", "t2", ["$b"])
    assert set(memory.held(ME, "D", "t2") or {}) == {"$a", "$b"}
    # a retry of t1 is judged by t1, not by what t2 was sent
    assert set(memory.held(ME, "D", "t1") or {}) == {"$a"}


def test_unknown_tokens_devices_and_users_hold_nothing() -> None:
    memory = LazyMemberMemory()
    memory.remember(ME, "D", None, "t1", ["$a"])
    assert memory.held(ME, "D", "t0") is None
    assert memory.held(ME, "E", "t1") is None
    assert memory.held("@you:hs", "D", "t1") is None
    # from a token not remembered, only what was sent is held
    memory.remember(ME, "D", "t0", "t2", ["$b"])
    assert set(memory.held(ME, "D", "t2") or {}) == {"$b"}


def test_only_the_last_tokens_of_a_device_are_kept() -> None:
    memory = LazyMemberMemory(tokens_per_device=3)
    since = None
    for n in range(1, 5):
        memory.remember(ME, "D", since, f"t{n}", [f"${n}"])
        since = f"t{n}"
    assert memory.held(ME, "D", "t1") is None
    assert set(memory.held(ME, "D", "t4") or {}) == {"$1", "$2", "$3", "$4"}


def test_the_least_recently_sent_events_go_first() -> None:
    memory = LazyMemberMemory(max_held_events=2)
    memory.remember(ME, "D", None, "t1", ["$a", "$b"])
    memory.remember(ME, "D", "t1", "t2", ["$c"])
    assert set(memory.held(ME, "D", "t2") or {}) == {"$b", "$c"}


def test_devices_beyond_the_bound_are_forgotten() -> None:
    memory = LazyMemberMemory(max_devices=2)
    for device in ("A", "B", "C"):
        memory.remember(ME, device, None, "t1", ["$a"])
    assert memory.held(ME, "A", "t1") is None
    assert memory.held(ME, "C", "t1") is not None


def test_one_token_given_to_two_answers_holds_only_what_both_had() -> None:
    memory = LazyMemberMemory()
    memory.remember(ME, "D", None, "t1", ["$a"])
    memory.remember(ME, "D", None, "t2", ["$b"])
    memory.remember(ME, "D", "t1", "t3", ["$c"])
    memory.remember(ME, "D", "t2", "t3", ["$c"])
    assert set(memory.held(ME, "D", "t3") or {}) == {"$c"}
