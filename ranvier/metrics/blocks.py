"""Named blocks of work (persisting a batch of events, one pass of a sync, one outbound
transaction), under Synapse's `synapse_util_metrics_block_*` names: how often each ran,
for how long, the CPU and database time it took.

The event loop interleaves other work with a block that awaits, and the CPU time is the
process's while the block ran: it includes what ran in between. The database figures are
the block's own (usage.py)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from prometheus_client import Counter

from ranvier.metrics import usage
from ranvier.metrics.registry import REGISTRY, enabled

BLOCK_COUNT = Counter(
    "synapse_util_metrics_block_count", "Times the block ran", ["block_name"], registry=REGISTRY
)
BLOCK_TIME = Counter(
    "synapse_util_metrics_block_time_seconds",
    "Wall-clock seconds in the block",
    ["block_name"],
    registry=REGISTRY,
)
BLOCK_RU_UTIME = Counter(
    "synapse_util_metrics_block_ru_utime_seconds",
    "User CPU seconds of the process while the block ran",
    ["block_name"],
    registry=REGISTRY,
)
BLOCK_RU_STIME = Counter(
    "synapse_util_metrics_block_ru_stime_seconds",
    "System CPU seconds of the process while the block ran",
    ["block_name"],
    registry=REGISTRY,
)
BLOCK_DB_TXN_COUNT = Counter(
    "synapse_util_metrics_block_db_txn_count",
    "Database transactions run in the block",
    ["block_name"],
    registry=REGISTRY,
)
BLOCK_DB_TXN_DURATION = Counter(
    "synapse_util_metrics_block_db_txn_duration_seconds",
    "Seconds in database transactions in the block, connection waits excluded",
    ["block_name"],
    registry=REGISTRY,
)
BLOCK_DB_SCHED_DURATION = Counter(
    "synapse_util_metrics_block_db_sched_duration_seconds",
    "Seconds the block's transactions waited for a database connection",
    ["block_name"],
    registry=REGISTRY,
)

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def measure(block_name: str) -> Iterator[None]:
    if not enabled():
        yield
        return
    cpu_before = os.times()
    started = time.perf_counter()
    used, token = usage.begin()
    try:
        yield
    finally:
        usage.end(token)
        cpu_after = os.times()
        BLOCK_COUNT.labels(block_name).inc()
        BLOCK_TIME.labels(block_name).inc(time.perf_counter() - started)
        BLOCK_RU_UTIME.labels(block_name).inc(max(cpu_after.user - cpu_before.user, 0.0))
        BLOCK_RU_STIME.labels(block_name).inc(max(cpu_after.system - cpu_before.system, 0.0))
        BLOCK_DB_TXN_COUNT.labels(block_name).inc(used.db_txn_count)
        BLOCK_DB_TXN_DURATION.labels(block_name).inc(used.db_txn_seconds)
        BLOCK_DB_SCHED_DURATION.labels(block_name).inc(used.db_sched_seconds)


def measured(block_name: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Measure every call of an async function as the block `block_name`."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not enabled():
                return await function(*args, **kwargs)
            with measure(block_name):
                return await function(*args, **kwargs)

        return wrapper

    return decorate
