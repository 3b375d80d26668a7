"""HTTP requests and responses under Synapse's names: counted when they arrive
(`synapse_http_server_requests_received_total`), counted and timed when answered
(`synapse_http_server_responses_total`, `synapse_http_server_response_time_seconds`), the
database work each did, and how many are in flight, by method and servlet."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from ranvier.metrics.registry import REGISTRY
from ranvier.metrics.usage import Usage

REQUESTS_RECEIVED = Counter(
    "synapse_http_server_requests_received",
    "Requests received, by method and servlet",
    ["method", "servlet"],
    registry=REGISTRY,
)
RESPONSES = Counter(
    "synapse_http_server_responses",
    "Responses sent, by method and status code",
    ["method", "code"],
    registry=REGISTRY,
)
# Synapse's buckets are prometheus_client's defaults, 5 ms to 10 s
RESPONSE_TIME = Histogram(
    "synapse_http_server_response_time_seconds",
    "Seconds from a request's arrival to its response",
    ["method", "servlet", "tag", "code"],
    registry=REGISTRY,
)
RESPONSE_COUNT = Counter(
    "synapse_http_server_response_count",
    "Responses sent, by method and servlet",
    ["method", "servlet", "tag"],
    registry=REGISTRY,
)
RESPONSE_DB_TXN_COUNT = Counter(
    "synapse_http_server_response_db_txn_count",
    "Database transactions run while serving requests",
    ["method", "servlet", "tag"],
    registry=REGISTRY,
)
RESPONSE_DB_TXN_SECONDS = Counter(
    "synapse_http_server_response_db_txn_duration_seconds",
    "Seconds in database transactions while serving requests, connection waits excluded",
    ["method", "servlet", "tag"],
    registry=REGISTRY,
)
RESPONSE_DB_SCHED_SECONDS = Counter(
    "synapse_http_server_response_db_sched_duration_seconds",
    "Seconds waiting for a database connection while serving requests",
    ["method", "servlet", "tag"],
    registry=REGISTRY,
)
# what the dashboard's "DB usage by endpoint" reads; counted when the request ends
IN_FLIGHT_DB_TXN_SECONDS = Counter(
    "synapse_http_server_in_flight_requests_db_txn_duration_seconds",
    "Seconds in database transactions while serving requests",
    ["method", "servlet"],
    registry=REGISTRY,
)

# Synapse's `tag` is the name of a logging context's sub-task; every response here is the
# request's own
TAG = ""


class _ServletMetrics:
    """The labelled children for one (method, servlet), looked up once: labels() takes a
    lock and builds a key on every call."""

    __slots__ = ("count", "db_count", "db_sched", "db_seconds", "in_flight_db", "received")

    def __init__(self, method: str, servlet: str) -> None:
        self.received = REQUESTS_RECEIVED.labels(method, servlet)
        self.count = RESPONSE_COUNT.labels(method, servlet, TAG)
        self.db_count = RESPONSE_DB_TXN_COUNT.labels(method, servlet, TAG)
        self.db_seconds = RESPONSE_DB_TXN_SECONDS.labels(method, servlet, TAG)
        self.db_sched = RESPONSE_DB_SCHED_SECONDS.labels(method, servlet, TAG)
        self.in_flight_db = IN_FLIGHT_DB_TXN_SECONDS.labels(method, servlet)


class RequestMetrics:
    def __init__(self) -> None:
        self._servlets: dict[tuple[str, str], _ServletMetrics] = {}
        self._timers: dict[tuple[str, str, str], tuple[Histogram, Counter]] = {}
        self._in_flight: Tally[tuple[str, str]] = Tally()

    def started(self, method: str, servlet: str) -> None:
        key = (method, servlet)
        metrics = self._servlets.get(key)
        if metrics is None:
            metrics = self._servlets[key] = _ServletMetrics(method, servlet)
        metrics.received.inc()
        self._in_flight[key] += 1

    def finished(self, method: str, servlet: str, code: int, seconds: float, usage: Usage) -> None:
        key = (method, servlet)
        self._in_flight[key] -= 1
        if not self._in_flight[key]:
            del self._in_flight[key]
        status = str(code)
        timers = self._timers.get((method, servlet, status))
        if timers is None:
            timers = (
                RESPONSE_TIME.labels(method, servlet, TAG, status),
                RESPONSES.labels(method, status),
            )
            self._timers[(method, servlet, status)] = timers
        timers[0].observe(seconds)
        timers[1].inc()
        metrics = self._servlets[key]
        metrics.count.inc()
        if usage.db_txn_count:
            metrics.db_count.inc(usage.db_txn_count)
            metrics.db_seconds.inc(usage.db_txn_seconds)
            metrics.db_sched.inc(usage.db_sched_seconds)
            metrics.in_flight_db.inc(usage.db_txn_seconds)

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "synapse_http_server_in_flight_requests_count",
            "Requests being served, by method and servlet",
            labels=["method", "servlet"],
        )
        for (method, servlet), count in list(self._in_flight.items()):
            gauge.add_metric([method, servlet], count)
        yield gauge
