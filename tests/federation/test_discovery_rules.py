"""Server discovery's decisions, without the network (spec: server-server-api "Resolving
server names"), and the certificate and backoff rules."""

from __future__ import annotations

import pytest

from ranvier.federation.backoff import BackoffSettings, next_interval
from ranvier.federation.discovery import (
    WELL_KNOWN_DEFAULT_CACHE_SECONDS,
    WELL_KNOWN_MAX_CACHE_SECONDS,
    WELL_KNOWN_MIN_CACHE_SECONDS,
    Route,
    SrvTarget,
    cache_seconds,
    parse_well_known,
    pick_srv,
    route_via_srv,
    route_without_lookups,
)
from ranvier.federation.tls import TlsPolicy


@pytest.mark.parametrize(
    ("server_name", "route"),
    [
        # step 1: IP literals, certificate for the address, Host the server name
        ("1.2.3.4", Route("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
        ("1.2.3.4:99", Route("1.2.3.4", 99, "1.2.3.4", "1.2.3.4:99")),
        ("[::1]", Route("::1", 8448, "::1", "[::1]")),
        ("[2001:db8::1]:443", Route("2001:db8::1", 443, "2001:db8::1", "[2001:db8::1]:443")),
        # step 2: explicit port, certificate for the hostname, Host with the port
        ("example.com:8000", Route("example.com", 8000, "example.com", "example.com:8000")),
        # step 3 onwards need well-known and SRV
        ("example.com", None),
    ],
)
def test_routes_found_without_lookups(server_name: str, route: Route | None) -> None:
    assert route_without_lookups(server_name) == route


@pytest.mark.parametrize("server_name", ["", "a b", "example.com:0", "example.com:99999", "[::1"])
def test_names_that_are_not_server_names(server_name: str) -> None:
    with pytest.raises(ValueError):
        route_without_lookups(server_name)


def test_srv_target_keeps_the_name_for_the_certificate_and_host() -> None:
    # the certificate is for the name looked up, never for the SRV target
    assert route_via_srv("example.com", SrvTarget("matrix.example.net", 443)) == Route(
        "matrix.example.net", 443, "example.com", "example.com"
    )
    assert route_via_srv("example.com", None) == Route(
        "example.com", 8448, "example.com", "example.com"
    )


def test_srv_choice_takes_the_lowest_priority() -> None:
    records = [(20, 100, "b.example.", 2), (10, 0, "a.example.", 1), (10, 0, "c.example.", 3)]
    chosen = {pick_srv(records) for _ in range(50)}
    assert chosen <= {SrvTarget("a.example", 1), SrvTarget("c.example", 3)}


@pytest.mark.parametrize(
    ("body", "delegated"),
    [
        (b'{"m.server": "delegated.example:443"}', "delegated.example:443"),
        (b'{"m.server": "delegated.example", "other": 1}', "delegated.example"),
        (b'{"m.server": "[::1]:8448"}', "[::1]:8448"),
    ],
)
def test_well_known_answers(body: bytes, delegated: str) -> None:
    assert parse_well_known(body) == delegated


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", b'{"m.server": 5}', b'{"m.server": "bad name!"}', b"\xff"],
)
def test_invalid_well_known_answers(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_well_known(body)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, WELL_KNOWN_DEFAULT_CACHE_SECONDS),
        ({"cache-control": "max-age=3600"}, 3600.0),
        ({"cache-control": "public, max-age=7200, must-revalidate"}, 7200.0),
        ({"cache-control": "max-age=1"}, WELL_KNOWN_MIN_CACHE_SECONDS),
        ({"cache-control": "max-age=999999999"}, WELL_KNOWN_MAX_CACHE_SECONDS),
        ({"cache-control": "no-store"}, WELL_KNOWN_MIN_CACHE_SECONDS),
        ({"expires": "Thu, 01 Jan 1970 02:00:00 GMT"}, 7200.0),
        ({"expires": "garbage"}, WELL_KNOWN_MIN_CACHE_SECONDS),
    ],
)
def test_well_known_cache_lifetime(headers: dict[str, str], seconds: float) -> None:
    assert cache_seconds(headers, now=0.0) == seconds


def test_certificate_verification_whitelist_globs() -> None:
    policy = TlsPolicy(verification_whitelist=["*.legacy.example", "exact.example"])
    assert not policy.verifies("a.legacy.example")
    assert not policy.verifies("A.b.LEGACY.example")
    assert not policy.verifies("exact.example")
    assert policy.verifies("legacy.example")
    assert policy.verifies("exact.example.evil")
    assert not TlsPolicy(verify=False).verifies("anything.example")


def test_backoff_grows_within_its_bounds() -> None:
    settings = BackoffSettings(
        min_retry_interval_ms=1000, retry_multiplier=2.0, max_retry_interval_ms=5000
    )
    assert next_interval(0, settings, jitter=1.0) == 1000
    assert next_interval(1000, settings, jitter=1.0) == 2000
    assert next_interval(2000, settings, jitter=1.4) == 5000
    assert next_interval(4000, settings, jitter=1.0) == 5000
