"""Outbound federation under Synapse's names: PDUs queued for other servers, transactions
and EDUs they acknowledged, the queues waiting in memory (read at scrape time), and, for
the servers named in `federation_metrics_domains`, when a PDU last reached them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from ranvier.metrics.registry import REGISTRY, enabled, register

SENT_PDU_DESTINATIONS_COUNT = Counter(
    "synapse_federation_client_sent_pdu_destinations_count",
    "PDUs queued for one or more other servers",
    registry=REGISTRY,
)
SENT_PDU_DESTINATIONS = Counter(
    "synapse_federation_client_sent_pdu_destinations",
    "PDUs queued, counted once per server they are queued for",
    registry=REGISTRY,
)
SENT_TRANSACTIONS = Counter(
    "synapse_federation_client_sent_transactions",
    "Transactions other servers acknowledged",
    registry=REGISTRY,
)
SENT_EDUS = Counter(
    "synapse_federation_client_sent_edus",
    "EDUs in transactions other servers acknowledged",
    registry=REGISTRY,
)
SENT_EDUS_BY_TYPE = Counter(
    "synapse_federation_client_sent_edus_by_type",
    "EDUs in transactions other servers acknowledged, by EDU type",
    ["type"],
    registry=REGISTRY,
)
LAST_SENT_PDU_TIME = Gauge(
    "synapse_federation_last_sent_pdu_time",
    "When a transaction with PDUs last reached the server (federation_metrics_domains)",
    ["destination_server_name"],
    registry=REGISTRY,
)


class _Domains:
    # federation_metrics_domains: a label per server only for these, so it stays bounded
    labelled: frozenset[str] = frozenset()


def label_domains(domains: Iterable[str]) -> None:
    _Domains.labelled = frozenset(domains)


def pdus_queued(destination_counts: Iterable[int]) -> None:
    """One call per batch: how many servers each PDU was queued for."""
    if not enabled():
        return
    for count in destination_counts:
        SENT_PDU_DESTINATIONS_COUNT.inc()
        SENT_PDU_DESTINATIONS.inc(count)


def transaction_sent(destination: str, pdu_count: int, edu_types: Iterable[str]) -> None:
    """A destination acknowledged a transaction."""
    if not enabled():
        return
    SENT_TRANSACTIONS.inc()
    types = list(edu_types)
    if types:
        SENT_EDUS.inc(len(types))
        for edu_type in types:
            SENT_EDUS_BY_TYPE.labels(edu_type).inc()
    if pdu_count and destination in _Domains.labelled:
        LAST_SENT_PDU_TIME.labels(destination).set(time.time())


class PendingQueues:
    """`synapse_federation_transaction_queue_pending_{destinations,pdus,edus}`, read off
    the sender's queues when scraped."""

    def __init__(self, pending: Callable[[], tuple[int, int, int]]) -> None:
        self._pending = pending
        register(self)

    def collect(self) -> Iterator[Metric]:
        destinations, pdus, edus = self._pending()
        prefix = "synapse_federation_transaction_queue_pending_"
        for suffix, value, help_text in (
            ("destinations", destinations, "Servers with something waiting to be sent"),
            ("pdus", pdus, "PDUs waiting in memory to be sent"),
            ("edus", edus, "EDUs waiting in memory to be sent"),
        ):
            gauge = GaugeMetricFamily(prefix + suffix, help_text)
            gauge.add_metric([], value)
            yield gauge


RECEIVED_PDUS = Counter(
    "synapse_federation_server_received_pdus",
    "PDUs in transactions other servers pushed to us (a retried transaction counts once)",
    registry=REGISTRY,
)
RECEIVED_EDUS = Counter(
    "synapse_federation_server_received_edus",
    "EDUs in transactions other servers pushed to us",
    registry=REGISTRY,
)
LAST_RECEIVED_PDU_TIME = Gauge(
    "synapse_federation_last_received_pdu_time",
    "When a transaction with PDUs last came from the server (federation_metrics_domains)",
    ["origin_server_name"],
    registry=REGISTRY,
)


def transaction_received(origin: str, pdu_count: int, edu_count: int) -> None:
    """Another server pushed a transaction we had not answered before."""
    if not enabled():
        return
    RECEIVED_PDUS.inc(pdu_count)
    RECEIVED_EDUS.inc(edu_count)
    if pdu_count and origin in _Domains.labelled:
        LAST_RECEIVED_PDU_TIME.labels(origin).set(time.time())
