"""Database use attributed to whatever is running: an HTTP request, a measured block.
Each sets a `Usage` in a context variable for its duration (tasks it starts inherit it),
and the database's transaction timer adds to every one that is active."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    db_txn_count: int = 0
    db_txn_seconds: float = 0.0
    db_sched_seconds: float = 0.0


# outermost first: a block inside a request counts toward both
_active: ContextVar[tuple[Usage, ...]] = ContextVar("ranvier_metrics_usage", default=())


def begin() -> tuple[Usage, Token[tuple[Usage, ...]]]:
    usage = Usage()
    return usage, _active.set((*_active.get(), usage))


def end(token: Token[tuple[Usage, ...]]) -> None:
    _active.reset(token)


def add_transaction(seconds: float, sched_seconds: float) -> None:
    for usage in _active.get():
        usage.db_txn_count += 1
        usage.db_txn_seconds += seconds
        usage.db_sched_seconds += sched_seconds
