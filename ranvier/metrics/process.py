"""What the process costs, beyond prometheus_client's process collector
(`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, ...):
CPU split into user and system time, and the garbage collector's pauses and object
counts, under the names Synapse's dashboard plots."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

# Synapse's buckets for collection pauses: a few ms to tens of seconds
GC_TIME_BUCKETS = (
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.10,
    0.25,
    0.50,
    1.00,
    2.50,
    5.00,
    7.50,
    15.00,
    30.00,
    45.00,
    60.00,
)


class _CpuAndGcCounts:
    def collect(self) -> Iterator[Metric]:
        times = os.times()
        # gauges under counter-like names, as Synapse exposes them
        user = GaugeMetricFamily("process_cpu_user_seconds_total", "User CPU time")
        user.add_metric([], times.user)
        system = GaugeMetricFamily("process_cpu_system_seconds_total", "System CPU time")
        system.add_metric([], times.system)
        counts = GaugeMetricFamily("python_gc_counts", "GC object counts", labels=["gen"])
        for generation, count in enumerate(gc.get_count()):
            counts.add_metric([str(generation)], count)
        yield from (user, system, counts)


class _GcTimer:
    """Times each collection through gc.callbacks: two calls per collection, nothing
    between collections."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._time = Histogram(
            "python_gc_time",
            "Time taken to GC (sec)",
            ["gen"],
            buckets=GC_TIME_BUCKETS,
            registry=registry,
        )
        self._unreachable = Counter(
            "python_gc_unreachable",
            "Unreachable objects found by the GC",
            ["gen"],
            registry=registry,
        )
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = str(info.get("generation", 0))
        self._time.labels(generation).observe(time.perf_counter() - self._started)
        self._unreachable.labels(generation).inc(info.get("collected", 0))


def register(registry: CollectorRegistry) -> None:
    registry.register(_CpuAndGcCounts())
    gc.callbacks.append(_GcTimer(registry))
