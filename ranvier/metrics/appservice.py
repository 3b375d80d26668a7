"""Transactions pushed to application services, by service ID, under Synapse's names."""

from __future__ import annotations

from prometheus_client import Counter

from ranvier.metrics.registry import REGISTRY, enabled

SENT_TRANSACTIONS = Counter(
    "synapse_appservice_api_sent_transactions",
    "Transactions an application service acknowledged",
    ["service"],
    registry=REGISTRY,
)
FAILED_TRANSACTIONS = Counter(
    "synapse_appservice_api_failed_transactions",
    "Attempts to push a transaction that failed (each is retried)",
    ["service"],
    registry=REGISTRY,
)
SENT_EVENTS = Counter(
    "synapse_appservice_api_sent_events",
    "Room events in acknowledged transactions",
    ["service"],
    registry=REGISTRY,
)
SENT_EPHEMERAL = Counter(
    "synapse_appservice_api_sent_ephemeral",
    "Ephemeral events (typing, receipts, presence) in acknowledged transactions",
    ["service"],
    registry=REGISTRY,
)
SENT_TODEVICE = Counter(
    "synapse_appservice_api_sent_todevice",
    "To-device messages in acknowledged transactions",
    ["service"],
    registry=REGISTRY,
)


def transaction_sent(service: str, events: int, ephemeral: int, to_device: int) -> None:
    if not enabled():
        return
    SENT_TRANSACTIONS.labels(service).inc()
    SENT_EVENTS.labels(service).inc(events)
    SENT_EPHEMERAL.labels(service).inc(ephemeral)
    SENT_TODEVICE.labels(service).inc(to_device)


def transaction_failed(service: str) -> None:
    if enabled():
        FAILED_TRANSACTIONS.labels(service).inc()
