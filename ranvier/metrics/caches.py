"""In-memory caches by name: lookups, hits, size, capacity and evictions, under Synapse's
names (`synapse_util_caches_cache_hits`, `synapse_util_caches_cache` for lookups,
`_cache_size`, `_cache_max_size`, `_cache_evicted_size` by reason).

`lru_cache` and `ttl_cache` make the cachetools caches the services use. With metrics off
they are the plain classes; with metrics on, subclasses that count a lookup on every `in`
test or `get` (how the services ask: `key in cache`, then `cache[key]`), and an eviction
on every entry pushed out for room (`size`) or for age (`time`). Sizes are read at scrape
time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any, TypeVar

from cachetools import Cache, LRUCache, TTLCache
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from ranvier.metrics.registry import enabled, register

K = TypeVar("K")
V = TypeVar("V")


class CacheStats:
    __slots__ = ("evicted_for_size", "evicted_for_time", "hits", "lookups")

    def __init__(self) -> None:
        self.hits = 0
        self.lookups = 0
        self.evicted_for_size = 0
        self.evicted_for_time = 0


class _MeteredLRUCache(LRUCache[K, V]):
    def __init__(self, maxsize: int, stats: CacheStats) -> None:
        super().__init__(maxsize)
        self.stats = stats

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        self.stats.lookups += 1
        self.stats.hits += found
        return found

    def popitem(self) -> tuple[K, V]:
        item = super().popitem()
        self.stats.evicted_for_size += 1
        return item


class _MeteredTTLCache(TTLCache[K, V]):
    def __init__(self, maxsize: int, ttl: float, stats: CacheStats) -> None:
        super().__init__(maxsize, ttl)
        self.stats = stats

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        self.stats.lookups += 1
        self.stats.hits += found
        return found

    def popitem(self) -> tuple[K, V]:
        item = super().popitem()
        self.stats.evicted_for_size += 1
        return item

    def expire(self, time: Any = None) -> Any:
        expired = super().expire(time)
        if expired:
            self.stats.evicted_for_time += len(expired)
        return expired


class _CacheCollector:
    def __init__(self) -> None:
        self.name_to_caches: dict[str, list[Cache[Any, Any]]] = defaultdict(list)

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("synapse_util_caches_cache_size", "Entries", labels=["name"])
        max_size = GaugeMetricFamily(
            "synapse_util_caches_cache_max_size", "Capacity in entries", labels=["name"]
        )
        hits = GaugeMetricFamily("synapse_util_caches_cache_hits", "Hits", labels=["name"])
        lookups = GaugeMetricFamily("synapse_util_caches_cache", "Lookups", labels=["name"])
        evicted = GaugeMetricFamily(
            "synapse_util_caches_cache_evicted_size",
            "Entries evicted, for room (size) or for age (time)",
            labels=["name", "reason"],
        )
        for name, caches in list(self.name_to_caches.items()):
            stats = [cache.stats for cache in caches]  # type: ignore[attr-defined]
            size.add_metric([name], sum(len(cache) for cache in caches))
            max_size.add_metric([name], sum(cache.maxsize for cache in caches))
            hits.add_metric([name], sum(s.hits for s in stats))
            lookups.add_metric([name], sum(s.lookups for s in stats))
            evicted.add_metric([name, "size"], sum(s.evicted_for_size for s in stats))
            evicted.add_metric([name, "time"], sum(s.evicted_for_time for s in stats))
        yield from (size, max_size, hits, lookups, evicted)


_collector: _CacheCollector | None = None


def _registered(name: str, cache: Cache[K, V]) -> Cache[K, V]:
    global _collector
    if _collector is None:
        _collector = _CacheCollector()
        register(_collector)
    # caches of one name (one per room sender, say) add up under it
    _collector.name_to_caches[name].append(cache)
    return cache


def lru_cache(name: str, maxsize: int) -> LRUCache[K, V]:
    """An LRU cache of `maxsize` entries, reported as `name` when metrics are on."""
    if not enabled():
        return LRUCache(maxsize)
    cache: LRUCache[K, V] = _MeteredLRUCache(maxsize, CacheStats())
    _registered(name, cache)
    return cache


def ttl_cache(name: str, maxsize: int, ttl_seconds: float) -> TTLCache[K, V]:
    """An LRU cache whose entries also expire `ttl_seconds` after they were set."""
    if not enabled():
        return TTLCache(maxsize, ttl_seconds)
    cache: TTLCache[K, V] = _MeteredTTLCache(maxsize, ttl_seconds, CacheStats())
    _registered(name, cache)
    return cache
