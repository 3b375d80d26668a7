"""A server with `enable_metrics` on each engine, scraped over HTTP like Prometheus: the
counters move with what clients do, under Synapse's names and labels, and a listener of
type `metrics` serves the same on a port of its own."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import request
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, free_port
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    register,
)
from tests.metrics.scrape import SERVER_NAME, Scrape, scrape
from tests.metrics.servers import serving_metrics

__all__ = ["module_database"]

SYNAPSE_METRICS = "/_synapse/metrics"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any], metrics_port: int
) -> Iterator[RunningServer]:
    own_port = {"port": metrics_port, "bind_addresses": ["127.0.0.1"], "type": "metrics"}
    with serving_metrics(
        tmp_path_factory.mktemp("hs"), module_database, own_port, **REGISTRATION_CONFIG
    ) as running:
        yield running


@pytest.fixture(scope="module")
def metrics_url(metrics_port: int) -> str:
    return f"http://127.0.0.1:{metrics_port}"


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


@pytest.fixture(scope="module")
def room_id(server: RunningServer, alice: Session) -> str:
    return create_room(server.url, alice)


def read(server: RunningServer) -> Scrape:
    return scrape(server.url + SYNAPSE_METRICS)


def send(server: RunningServer, alice: Session, room_id: str, txn_id: str) -> None:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{txn_id}"
    reply = authed(alice, "PUT", url, {"msgtype": "m.text", "body": "hello"})
    assert reply.status == 200, reply.body


def test_a_send_moves_the_request_counters_under_synapses_servlet_name(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    labels = {"method": "PUT", "servlet": "RoomSendEventRestServlet"}
    before = read(server)
    send(server, alice, room_id, "send-counted")
    after = read(server)

    received = "synapse_http_server_requests_received_total"
    assert after.value(received, **labels, server_name=SERVER_NAME) == (
        before.value(received, **labels, server_name=SERVER_NAME) + 1
    )
    timed = {**labels, "tag": "", "code": "200", "server_name": SERVER_NAME}
    count = "synapse_http_server_response_time_seconds_count"
    assert after.value(count, **timed) == before.value(count, **timed) + 1
    # Synapse's buckets, cumulative, ending at +Inf
    buckets = after.matching("synapse_http_server_response_time_seconds_bucket", **timed)
    bounds = sorted(dict(key)["le"] for key in buckets)
    assert "+Inf" in bounds and "0.005" in bounds and "10.0" in bounds
    assert after.value("synapse_http_server_response_time_seconds_bucket", **timed, le="+Inf") == (
        after.value(count, **timed)
    )
    responses = {"method": "PUT", "code": "200", "server_name": SERVER_NAME}
    assert after.value("synapse_http_server_responses_total", **responses) >= (
        before.value("synapse_http_server_responses_total", **responses) + 1
    )
    # the send's own transactions are counted against it
    db_count = "synapse_http_server_response_db_txn_count_total"
    db_labels = {**labels, "tag": "", "server_name": SERVER_NAME}
    assert after.value(db_count, **db_labels) > before.value(db_count, **db_labels)


def test_unknown_paths_are_counted_as_one_servlet_with_their_code(server: RunningServer) -> None:
    before = read(server)
    reply = request("GET", server.url + "/_matrix/client/v3/no/such/endpoint/!room:x")
    assert reply.status == 404
    after = read(server)
    not_found = {"method": "GET", "code": "404", "server_name": SERVER_NAME}
    assert after.value("synapse_http_server_responses_total", **not_found) == (
        before.value("synapse_http_server_responses_total", **not_found) + 1
    )
    unmatched = {"method": "GET", "servlet": "UnrecognizedRequest", "server_name": SERVER_NAME}
    received = "synapse_http_server_requests_received_total"
    assert after.value(received, **unmatched) == before.value(received, **unmatched) + 1


def test_servlet_labels_never_hold_identifiers(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    send(server, alice, room_id, "no-ids")
    servlets = {
        dict(key)["servlet"]
        for key in read(server).matching("synapse_http_server_requests_received_total")
    }
    assert "RoomSendEventRestServlet" in servlets
    assert not [name for name in servlets if any(c in name for c in "!@$:/")], servlets


def test_persisted_events_are_counted_by_type_and_origin(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    before = read(server)
    send(server, alice, room_id, "persist-counted")
    after = read(server)
    total = "synapse_storage_events_persisted_events_total"
    assert after.value(total, server_name=SERVER_NAME) == (
        before.value(total, server_name=SERVER_NAME) + 1
    )
    sep = {"type": "m.room.message", "origin_type": "local", "server_name": SERVER_NAME}
    sep_total = "synapse_storage_events_persisted_events_sep_total"
    assert after.value(sep_total, **sep) == before.value(sep_total, **sep) + 1
    assert after.value("synapse_event_persisted_position", server_name=SERVER_NAME) > (
        before.value("synapse_event_persisted_position", server_name=SERVER_NAME)
    )
    block = {"block_name": "persist_events", "server_name": SERVER_NAME}
    assert after.value("synapse_util_metrics_block_count_total", **block) == (
        before.value("synapse_util_metrics_block_count_total", **block) + 1
    )
    assert after.value("synapse_util_metrics_block_db_txn_count_total", **block) > (
        before.value("synapse_util_metrics_block_db_txn_count_total", **block)
    )


def test_database_transactions_are_named_and_timed(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    send(server, alice, room_id, "db-named")
    after = read(server)
    names = {
        dict(key)["desc"]: value
        for key, value in after.matching(
            "synapse_storage_transaction_time_count_total", server_name=SERVER_NAME
        ).items()
    }
    # named after the store methods that ran them
    assert any("." in name for name in names), names
    assert all(value >= 1 for value in names.values())
    seconds = after.matching("synapse_storage_transaction_time_sum_total")
    assert set(seconds) == set(after.matching("synapse_storage_transaction_time_count_total"))
    scheduled = after.value("synapse_storage_schedule_time_count", server_name=SERVER_NAME)
    assert scheduled >= sum(names.values())
    assert after.value("synapse_storage_schedule_time_bucket", le="+Inf", server_name=SERVER_NAME)


def test_caches_report_lookups_hits_and_sizes(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    before = read(server)
    # the same token, twice: the second lookup is a hit of the access token cache
    for _ in range(2):
        reply = authed(alice, "GET", server.url + CLIENT + "/account/whoami")
        assert reply.status == 200
    after = read(server)
    tokens = {"name": "access_tokens", "server_name": SERVER_NAME}
    assert after.value("synapse_util_caches_cache", **tokens) >= (
        before.value("synapse_util_caches_cache", **tokens) + 2
    )
    assert after.value("synapse_util_caches_cache_hits", **tokens) >= (
        before.value("synapse_util_caches_cache_hits", **tokens) + 2
    )
    assert after.value("synapse_util_caches_cache_size", **tokens) >= 1
    assert after.value("synapse_util_caches_cache_max_size", **tokens) >= 1
    for name in ("events", "state_groups", "redactions"):
        assert (
            "synapse_util_caches_cache_max_size",
            (("name", name), ("server_name", SERVER_NAME)),
        ) in after.samples
        evicted = after.matching("synapse_util_caches_cache_evicted_size", name=name)
        assert {dict(key)["reason"] for key in evicted} == {"size", "time"}
    assert after.value("synapse_util_caches_cache", name="events", server_name=SERVER_NAME) > 0


def test_process_and_garbage_collector_metrics_are_served(server: RunningServer) -> None:
    after = read(server)
    for name in (
        "process_cpu_seconds_total",
        "process_cpu_user_seconds_total",
        "process_cpu_system_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ):
        assert after.value(name) > 0, name
    assert ("python_gc_counts", (("gen", "0"),)) in after.samples
    assert after.matching("python_gc_time_bucket", gen="0")
    # process metrics are the process's, not labelled with the server like Synapse's own
    assert not after.matching("process_open_fds", server_name=SERVER_NAME)


def test_a_waiting_long_poll_shows_in_flight_and_among_the_notifiers_listeners(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    first = authed(alice, "GET", server.url + CLIENT + "/sync?timeout=0")
    since = first.json()["next_batch"]
    answers: list[int] = []
    url = f"{server.url}{CLIENT}/sync?timeout=8000&since={quote(since)}"
    poll = threading.Thread(target=lambda: answers.append(authed(alice, "GET", url).status))
    poll.start()
    try:
        deadline = time.monotonic() + 5
        while True:
            during = read(server)
            in_flight = during.value(
                "synapse_http_server_in_flight_requests_count",
                method="GET",
                servlet="SyncRestServlet",
                server_name=SERVER_NAME,
            )
            if in_flight >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert in_flight >= 1
        assert during.value("synapse_notifier_listeners", server_name=SERVER_NAME) >= 1
        assert during.value("synapse_notifier_users", server_name=SERVER_NAME) >= 1
        notified = during.value("synapse_notifier_notified_events_total", server_name=SERVER_NAME)
        send(server, alice, room_id, "wakes-the-poll")
    finally:
        poll.join(15)
    assert answers == [200]
    after = read(server)
    assert after.value("synapse_notifier_notified_events_total", server_name=SERVER_NAME) > notified
    woken = {"stream": "events", "server_name": SERVER_NAME}
    assert after.value("synapse_notifier_users_woken_by_stream_total", **woken) >= (
        during.value("synapse_notifier_users_woken_by_stream_total", **woken) + 1
    )
    assert not after.value(
        "synapse_http_server_in_flight_requests_count",
        method="GET",
        servlet="SyncRestServlet",
        server_name=SERVER_NAME,
    )


def test_background_updates_report_their_status(server: RunningServer) -> None:
    status = read(server).value(
        "synapse_background_update_status", database_name="master", server_name=SERVER_NAME
    )
    assert status in (2, 3)


def test_the_metrics_listener_serves_both_paths_and_nothing_else(
    server: RunningServer, metrics_url: str
) -> None:
    for path in (SYNAPSE_METRICS, "/metrics"):
        own = scrape(metrics_url + path)
        assert "synapse_http_server_requests_received" in own.families
        assert "synapse_util_caches_cache_hits" in own.families
    assert request("GET", metrics_url + CLIENT + "/versions").status == 404
    # the http listener serves the metrics resource at Synapse's path only
    assert request("GET", server.url + "/metrics").status == 404


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "ranvier-dashboard.json"
# what Synapse's own dashboard plots in its overview, requests, database, per-block, cache,
# event persistence, federation, application service and GC panels
SYNAPSE_DASHBOARD_SERIES = (
    "synapse_http_server_response_time_seconds_bucket",
    "synapse_http_server_requests_received_total",
    "synapse_http_server_in_flight_requests_count",
    "synapse_http_server_in_flight_requests_db_txn_duration_seconds_total",
    "synapse_storage_schedule_time_bucket",
    "synapse_storage_schedule_time_sum",
    "synapse_storage_transaction_time_count_total",
    "synapse_storage_transaction_time_sum_total",
    "synapse_util_metrics_block_count_total",
    "synapse_util_metrics_block_time_seconds_total",
    "synapse_util_metrics_block_ru_utime_seconds_total",
    "synapse_util_metrics_block_db_txn_duration_seconds_total",
    "synapse_util_caches_cache",
    "synapse_util_caches_cache_hits",
    "synapse_util_caches_cache_size",
    "synapse_util_caches_cache_evicted_size",
    "synapse_storage_events_persisted_events_total",
    "synapse_storage_events_persisted_events_sep_total",
    "synapse_event_persisted_position",
    "synapse_notifier_users_woken_by_stream_total",
    "synapse_federation_client_sent_transactions_total",
    "synapse_federation_client_sent_pdu_destinations_count_total",
    "synapse_federation_client_sent_edus_total",
    "synapse_federation_client_sent_edus_by_type_total",
    "synapse_federation_server_received_pdus_total",
    "synapse_federation_server_received_edus_total",
    "synapse_federation_transaction_queue_pending_pdus",
    "synapse_federation_transaction_queue_pending_edus",
    "synapse_appservice_api_sent_transactions_total",
    "synapse_appservice_api_sent_events_total",
    "process_cpu_seconds_total",
    "process_cpu_user_seconds_total",
    "process_cpu_system_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "python_gc_time_bucket",
    "python_gc_time_sum",
    "python_gc_unreachable_total",
    "python_gc_counts",
)
_SERIES = re.compile(r"\b(?:synapse|process|python|ranvier)_[a-z0-9_]+")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def served(scrape: Scrape, series: str) -> bool:
    """Whether a series a query names is served: as a sample, or as a metric family whose
    samples only exist once something happened (a labelled counter not yet counted)."""
    if any(name == series for name, _ in scrape.samples):
        return True
    return series in scrape.families or any(
        series.endswith(suffix) and series.removesuffix(suffix) in scrape.families
        for suffix in _SUFFIXES
    )


def test_every_series_the_dashboards_plot_is_served(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    send(server, alice, room_id, "for-the-dashboards")
    after = read(server)
    dashboard = json.loads(DASHBOARD.read_text())
    ours = {
        series
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        for series in _SERIES.findall(target["expr"])
    }
    assert len(ours) > 40
    missing = sorted(
        series for series in {*ours, *SYNAPSE_DASHBOARD_SERIES} if not served(after, series)
    )
    assert missing == []


def test_non_empty_syncs_are_counted_by_kind(
    server: RunningServer, alice: Session, room_id: str
) -> None:
    # a filter of its own, so no answer kept from another test's identical request serves it
    lazy = quote(
        json.dumps({"room": {"timeline": {"limit": 7}, "state": {"lazy_load_members": True}}})
    )
    before = read(server)
    initial = authed(alice, "GET", f"{server.url}{CLIENT}/sync?timeout=0&filter={lazy}")
    assert initial.status == 200
    send(server, alice, room_id, "for-an-incremental-sync")
    since = quote(initial.json()["next_batch"])
    incremental = authed(
        alice, "GET", f"{server.url}{CLIENT}/sync?timeout=0&filter={lazy}&since={since}"
    )
    assert incremental.json()["rooms"]["join"][room_id]["timeline"]["events"]
    nothing_new = quote(incremental.json()["next_batch"])
    empty = authed(
        alice, "GET", f"{server.url}{CLIENT}/sync?timeout=0&filter={lazy}&since={nothing_new}"
    )
    assert empty.status == 200 and not empty.json().get("rooms", {}).get("join")
    after = read(server)
    counted = "synapse_handlers_sync_nonempty_total"
    for kind in ("initial_sync", "incremental_sync"):
        labels = {"type": kind, "lazy_loaded": "true", "server_name": SERVER_NAME}
        assert after.value(counted, **labels) == before.value(counted, **labels) + 1, kind
