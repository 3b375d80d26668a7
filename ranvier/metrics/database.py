"""Database transactions: how long each waited for a connection (Synapse's
`synapse_storage_schedule_time`) and, per name, how many ran and for how long
(`synapse_storage_transaction_time_count` / `_sum`, as the dashboard's "Database" row
reads them). A transaction's name is the function that opened it (`EventStore.persist`,
say): every store method is a name, without each spelling one out."""

from __future__ import annotations

import sys
import time

from prometheus_client import Counter, Histogram

from ranvier.metrics import usage
from ranvier.metrics.registry import REGISTRY, enabled

SCHEDULE_TIME = Histogram(
    "synapse_storage_schedule_time",
    "Seconds a transaction waited for a database connection",
    registry=REGISTRY,
)
TRANSACTION_COUNT = Counter(
    "synapse_storage_transaction_time_count",
    "Transactions run, by the function that ran them",
    ["desc"],
    registry=REGISTRY,
)
TRANSACTION_SECONDS = Counter(
    "synapse_storage_transaction_time_sum",
    "Seconds spent in transactions once connected, by the function that ran them",
    ["desc"],
    registry=REGISTRY,
)

_desc_to_children: dict[str, tuple[Counter, Counter]] = {}


class TransactionTimer:
    __slots__ = ("_asked", "_connected", "_desc")

    def __init__(self, desc: str) -> None:
        self._desc = desc
        self._asked = time.perf_counter()
        self._connected: float | None = None

    def connected(self) -> None:
        self._connected = time.perf_counter()
        SCHEDULE_TIME.observe(self._connected - self._asked)

    def finished(self) -> None:
        if self._connected is None:
            # never got a connection: refused as unavailable, counted by nothing here
            return
        seconds = time.perf_counter() - self._connected
        children = _desc_to_children.get(self._desc)
        if children is None:
            children = (
                TRANSACTION_COUNT.labels(self._desc),
                TRANSACTION_SECONDS.labels(self._desc),
            )
            _desc_to_children[self._desc] = children
        children[0].inc()
        children[1].inc(seconds)
        usage.add_transaction(seconds, self._connected - self._asked)


class _Untimed:
    __slots__ = ()

    def connected(self) -> None:
        pass

    def finished(self) -> None:
        pass


_UNTIMED = _Untimed()


def transaction_timer(depth: int) -> TransactionTimer | _Untimed:
    """A timer for a transaction opened `depth` frames above the caller, named after the
    function there; one that records nothing when metrics are off."""
    if not enabled():
        return _UNTIMED
    code = sys._getframe(depth + 1).f_code
    return TransactionTimer(code.co_qualname)
