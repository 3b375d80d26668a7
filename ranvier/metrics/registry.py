"""The process's metrics registry, the switch that turns recording on, and the text a
scrape receives."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

# Ranvier's own registry, not prometheus_client's global one: what a library registers
# there by import does not reach a scrape unasked
REGISTRY = CollectorRegistry(auto_describe=True)
# the classic text format every Prometheus version reads (and Synapse serves)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# the label Synapse puts on its own metrics, which its dashboard selects on
SERVER_NAME_LABEL = "server_name"


class _State:
    enabled = False
    server_name = ""


def enabled() -> bool:
    """Whether metrics are recorded. Decided once, before the server is built: instrumented
    objects (caches) are only made while it is on."""
    return _State.enabled


def enable(server_name: str) -> None:
    """Turn recording on for this process (`enable_metrics: true`)."""
    if _State.enabled:
        return
    _State.enabled = True
    _State.server_name = server_name
    # `_created` samples double the text for counters no dashboard reads
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)
    # imported here: registering the GC hooks is the one cost that must wait for the switch
    from ranvier.metrics import process

    process.register(REGISTRY)


def register(collector: Collector) -> None:
    """A collector read at scrape time (sizes, queue lengths); unregistered never, as the
    objects it reads live as long as the process."""
    REGISTRY.register(collector)


class _WithServerName:
    """The registry's metrics with `server_name` added to Synapse's (`synapse_*`), as
    Synapse labels them: its dashboard filters every panel on it. Added at scrape time, so
    recording pays nothing for it."""

    def __init__(self, registry: CollectorRegistry, server_name: str) -> None:
        self._registry = registry
        self._server_name = server_name

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            if metric.name.startswith("synapse_"):
                metric.samples = list(self._labelled(metric.samples))
            yield metric

    def _labelled(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        for sample in samples:
            labels = {**sample.labels, SERVER_NAME_LABEL: self._server_name}
            yield sample._replace(labels=labels)


def render() -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(_WithServerName(REGISTRY, _State.server_name))
