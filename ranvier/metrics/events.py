"""Room events persisted, long-polls waiting and what wakes them, and background update
progress, under Synapse's names."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ranvier.metrics.registry import REGISTRY, enabled, register

PERSISTED_EVENTS = Counter(
    "synapse_storage_events_persisted_events",
    "Room events persisted (accepted, with their place in the timeline)",
    registry=REGISTRY,
)
PERSISTED_EVENTS_SEP = Counter(
    "synapse_storage_events_persisted_events_sep",
    "Room events persisted, by type (*other* for the untracked) and origin",
    ["type", "origin_type"],
    registry=REGISTRY,
)
PERSISTED_POSITION = Gauge(
    "synapse_event_persisted_position",
    "The newest position of the room events stream",
    registry=REGISTRY,
)
NOTIFIED = Counter(
    "synapse_notifier_notified_events",
    "Notifications of new room events to the long-polls",
    registry=REGISTRY,
)

# as Synapse: the common types by name, so the label stays small whatever clients send
TRACKED_EVENT_TYPES = frozenset(
    {
        "m.room.message",
        "m.room.encrypted",
        "m.room.member",
        "m.room.third_party_invite",
        "m.room.redaction",
        "m.room.create",
        "m.room.tombstone",
    }
)
OTHER_TYPE = "*other*"
ROOM_EVENTS_STREAM = "events"


class _PersistedEvent(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def sender(self) -> str: ...


class PersistedEventCounter:
    """A persist listener: counts each committed batch."""

    def __init__(self, server_name: str) -> None:
        self._local_suffix = ":" + server_name
        self._children: dict[tuple[str, str], Any] = {}

    async def on_persisted(self, events: Sequence[_PersistedEvent], position: int) -> None:
        PERSISTED_EVENTS.inc(len(events))
        PERSISTED_POSITION.set(position)
        for event in events:
            event_type = event.type if event.type in TRACKED_EVENT_TYPES else OTHER_TYPE
            origin = "local" if event.sender.endswith(self._local_suffix) else "remote"
            child = self._children.get((event_type, origin))
            if child is None:
                child = self._children[(event_type, origin)] = PERSISTED_EVENTS_SEP.labels(
                    event_type, origin
                )
            child.inc()


def count_notification(stream: str, position: int, **_targets: Any) -> None:
    """A notifier listener: each notification of a stream's change."""
    if stream == ROOM_EVENTS_STREAM:
        NOTIFIED.inc()


class WaitingLongPolls:
    """`synapse_notifier_listeners` (long-polls waiting), `synapse_notifier_rooms` and
    `synapse_notifier_users` (rooms and users they wait on), and
    `synapse_notifier_users_woken_by_stream_total`, read off the notifier when scraped."""

    def __init__(
        self,
        counts: Callable[[], tuple[int, int, int]],
        woken_by_stream: Callable[[], Mapping[str, int]],
    ) -> None:
        self._counts = counts
        self._woken_by_stream = woken_by_stream
        register(self)

    def collect(self) -> Iterator[Metric]:
        woken = CounterMetricFamily(
            "synapse_notifier_users_woken_by_stream",
            "Long-polls woken, by the stream whose change woke them",
            labels=["stream"],
        )
        for stream, count in list(self._woken_by_stream().items()):
            woken.add_metric([stream], count)
        yield woken
        listeners, rooms, users = self._counts()
        for name, value, help_text in (
            ("synapse_notifier_listeners", listeners, "Long-polls waiting for a change"),
            ("synapse_notifier_rooms", rooms, "Rooms that waiting long-polls follow"),
            ("synapse_notifier_users", users, "Users whose long-polls are waiting"),
        ):
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], value)
            yield gauge


# Synapse's values of synapse_background_update_status
STATUS_DISABLED = 0
STATUS_RUNNING = 2
STATUS_COMPLETE = 3


class BackgroundUpdateProgress:
    """`synapse_background_update_status` per database (0 paused by the admin, 2 running,
    3 nothing left to run), and the items the running update has done so far."""

    def __init__(self, status: Callable[[], dict[str, Any]], database_name: str) -> None:
        self._status = status
        self._database_name = database_name
        register(self)

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        current = status["current_updates"].get(self._database_name)
        if not status["enabled"]:
            value = STATUS_DISABLED
        elif current is not None:
            value = STATUS_RUNNING
        else:
            value = STATUS_COMPLETE
        gauge = GaugeMetricFamily(
            "synapse_background_update_status",
            "Background updates: 0 paused, 2 running, 3 none left to run",
            labels=["database_name"],
        )
        gauge.add_metric([self._database_name], value)
        yield gauge
        items = GaugeMetricFamily(
            "ranvier_background_update_items",
            "Items the running background update has processed so far",
            labels=["database_name", "update_name"],
        )
        if current is not None:
            items.add_metric([self._database_name, current["name"]], current["total_item_count"])
        yield items


NON_EMPTY_SYNCS = Counter(
    "synapse_handlers_sync_nonempty",
    "/sync answers with something in them, by kind and whether members were lazy-loaded",
    ["type", "lazy_loaded"],
    registry=REGISTRY,
)


def sync_answered(*, initial: bool, full_state: bool, lazy_loaded: bool, empty: bool) -> None:
    """One /sync computed (answers shared by identical requests count once)."""
    if empty or not enabled():
        return
    kind = "initial_sync" if initial else "full_state_sync" if full_state else "incremental_sync"
    NON_EMPTY_SYNCS.labels(kind, "true" if lazy_loaded else "false").inc()
