"""Server discovery: from a server name to where to connect, which name the certificate
must be valid for, and the Host header to send.

spec: server-server-api "Resolving server names" - an IP literal is used as it is; a
hostname with an explicit port is used with that port; otherwise
`https://<hostname>/.well-known/matrix/server` may delegate to another name (processed the
same way, except that it is not asked for a well-known of its own), then SRV records
`_matrix-fed._tcp` and the deprecated `_matrix._tcp`, then port 8448. The steps are
`route_for_*` functions, pure; `ServerDiscovery` does the I/O (well-known, SRV) between them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from ranvier.federation.connections import read_limited
from ranvier.federation.tls import TlsPolicy
from ranvier.protocol.server_names import server_name_problem

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_PATH = "/.well-known/matrix/server"
# spec: 24 h when the answer says nothing, at most 48 h; errors for up to an hour
WELL_KNOWN_DEFAULT_CACHE_SECONDS = 24 * 3600.0
WELL_KNOWN_MIN_CACHE_SECONDS = 5 * 60.0
WELL_KNOWN_MAX_CACHE_SECONDS = 48 * 3600.0
WELL_KNOWN_ERROR_CACHE_SECONDS = 3600.0
WELL_KNOWN_TIMEOUT_SECONDS = 10.0
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_MAX_REDIRECTS = 5
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request to a server goes. `host` is a hostname or an IP address (IPv6
    without brackets) to connect to; `tls_name` is what the certificate must be valid for
    and what SNI names (an IP address when the server is named by one)."""

    host: str
    port: int
    tls_name: str
    host_header: str


@dataclass(frozen=True, slots=True)
class SrvTarget:
    host: str
    port: int


class DiscoveryError(Exception):
    """The server name cannot lead anywhere (an SRV record saying the service is not
    offered, say)."""


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """(hostname, port) of a server name; an IPv6 literal keeps its brackets. ValueError if
    it is not a server name."""
    problem = server_name_problem(server_name)
    if problem is not None:
        raise ValueError(f"{server_name!r} is not a server name: {problem}")
    if server_name.startswith("["):
        end = server_name.index("]")
        host, rest = server_name[: end + 1], server_name[end + 1 :]
        return host, int(rest[1:]) if rest else None
    if ":" in server_name:
        host, port = server_name.rsplit(":", 1)
        return host, int(port)
    return server_name, None


def is_ip_literal(hostname: str) -> bool:
    if hostname.startswith("["):
        return True
    return re.fullmatch(r"[0-9.]+", hostname) is not None


def _unbracketed(hostname: str) -> str:
    return hostname[1:-1] if hostname.startswith("[") else hostname


def route_without_lookups(server_name: str) -> Route | None:
    """Steps 1 and 2 (and 3.1, 3.2 for a delegated name): the route of an IP literal or a
    name with an explicit port, or None when well-known and SRV must be asked."""
    hostname, port = split_server_name(server_name)
    if is_ip_literal(hostname):
        address = _unbracketed(hostname)
        return Route(address, port or DEFAULT_PORT, address, server_name)
    if port is not None:
        return Route(hostname, port, hostname, server_name)
    return None


def route_via_srv(hostname: str, srv: SrvTarget | None) -> Route:
    """Steps 3.3 to 3.5 and 4 to 6: the SRV target if there is one, else port 8448 of the
    name itself; either way the certificate is for `hostname` and so is the Host header."""
    if srv is None:
        return Route(hostname, DEFAULT_PORT, hostname, hostname)
    return Route(srv.host, srv.port, hostname, hostname)


def parse_well_known(body: bytes) -> str:
    """The delegated server name of a well-known answer; ValueError if the answer is not
    a JSON object whose `m.server` is a server name."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    delegated = parsed.get("m.server")
    if not isinstance(delegated, str):
        raise ValueError("m.server is missing or not a string")
    problem = server_name_problem(delegated)
    if problem is not None:
        raise ValueError(f"m.server {delegated!r} is not a server name: {problem}")
    return delegated


def cache_seconds(headers: dict[str, str], now: float) -> float:
    """How long a valid well-known answer is kept: Cache-Control max-age, else Expires,
    else 24 h, within 5 min and 48 h. `no-store`/`no-cache` keep it for the minimum."""
    cache_control = headers.get("cache-control", "")
    lowered = cache_control.lower()
    seconds: float | None = None
    if "no-store" in lowered or "no-cache" in lowered:
        seconds = 0.0
    else:
        match = _MAX_AGE.search(cache_control)
        if match is not None:
            seconds = float(match.group(1))
        elif "expires" in headers:
            try:
                expires = email.utils.parsedate_to_datetime(headers["expires"])
                seconds = expires.timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = 0.0  # RFC 9111: an invalid Expires means already expired
    if seconds is None:
        seconds = WELL_KNOWN_DEFAULT_CACHE_SECONDS
    return min(max(seconds, WELL_KNOWN_MIN_CACHE_SECONDS), WELL_KNOWN_MAX_CACHE_SECONDS)


def pick_srv(records: list[tuple[int, int, str, int]]) -> SrvTarget:
    """The target to use among (priority, weight, target, port) records: the lowest
    priority, chosen by weight among equals (RFC 2782)."""
    lowest = min(priority for priority, _, _, _ in records)
    candidates = [r for r in records if r[0] == lowest]
    total = sum(weight for _, weight, _, _ in candidates)
    if total == 0:
        chosen = random.choice(candidates)
    else:
        point = random.uniform(0, total)
        running = 0
        chosen = candidates[-1]
        for record in candidates:
            running += record[1]
            if point <= running:
                chosen = record
                break
    return SrvTarget(chosen[2].rstrip("."), chosen[3])


class ServerDiscovery:
    """Resolves server names, caching well-known answers (and failures) per hostname.

    `session` gives the aiohttp session well-known requests go through (the federation
    client's, so they keep to the same IP ranges) and `tls` its certificate rules;
    `resolver` is the
    dnspython resolver for SRV records (its nameservers from /etc/resolv.conf unless a
    configured one is passed); `well_known_port` is 443 but for tests.
    """

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        tls: TlsPolicy,
        *,
        resolver: dns.asyncresolver.Resolver | None = None,
        well_known_port: int = 443,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._tls = tls
        self._resolver = resolver
        self._well_known_port = well_known_port
        self._clock = clock
        # hostname -> (delegated server name or None, expires at)
        self._well_known_cache: dict[str, tuple[str | None, float]] = {}
        self._well_known_pending: dict[str, asyncio.Future[str | None]] = {}

    def _dns(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            self._resolver = dns.asyncresolver.Resolver()
        return self._resolver

    async def resolve(self, server_name: str) -> Route:
        """The route to `server_name`; ValueError if it is not a server name,
        DiscoveryError if its records say it cannot be reached."""
        route = route_without_lookups(server_name)
        if route is not None:
            return route
        hostname = server_name
        delegated = await self.well_known(hostname)
        if delegated is not None:
            route = route_without_lookups(delegated)
            if route is not None:
                return route
            hostname = delegated
        return route_via_srv(hostname, await self.srv(hostname))

    async def srv(self, hostname: str) -> SrvTarget | None:
        """The `_matrix-fed._tcp` SRV target of `hostname`, else the deprecated
        `_matrix._tcp` one, else None."""
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            target = await self._lookup_srv(f"{service}.{hostname}")
            if target is not None:
                return target
        return None

    async def _lookup_srv(self, name: str) -> SrvTarget | None:
        try:
            answer = await self._dns().resolve(name, dns.rdatatype.SRV)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return None
        except dns.exception.DNSException as exc:
            logger.info("SRV lookup of %s failed: %s", name, exc)
            return None
        records = [
            (rr.priority, rr.weight, rr.target.to_text(), rr.port)
            for rr in answer
            if rr.rdtype == dns.rdatatype.SRV
        ]
        if not records:
            return None
        if len(records) == 1 and records[0][2] == ".":
            # RFC 2782: a target of "." says the service is decidedly not offered
            raise DiscoveryError(f"{name} says the service is not available")
        return pick_srv([r for r in records if r[2] != "."])

    async def well_known(self, hostname: str) -> str | None:
        """The server name `hostname` delegates to, or None (no valid well-known)."""
        now = self._clock()
        cached = self._well_known_cache.get(hostname)
        if cached is not None and cached[1] > now:
            return cached[0]
        pending = self._well_known_pending.get(hostname)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._well_known_pending[hostname] = future
        try:
            delegated, lifetime = await self._fetch_well_known(hostname)
            self._well_known_cache[hostname] = (delegated, self._clock() + lifetime)
            future.set_result(delegated)
            return delegated
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved, so a future nobody awaits does not warn
            raise
        finally:
            del self._well_known_pending[hostname]

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, float]:
        port = "" if self._well_known_port == 443 else f":{self._well_known_port}"
        url = f"https://{hostname}{port}{WELL_KNOWN_PATH}"
        try:
            async with self._session().get(
                url,
                allow_redirects=True,
                max_redirects=WELL_KNOWN_MAX_REDIRECTS,
                ssl=self._tls.context_for(hostname),
                timeout=aiohttp.ClientTimeout(total=WELL_KNOWN_TIMEOUT_SECONDS),
            ) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                body = await read_limited(response, WELL_KNOWN_MAX_BYTES)
                if len(body) > WELL_KNOWN_MAX_BYTES:
                    raise ValueError("the answer is too large")
                delegated = parse_well_known(body)
                headers = {k.lower(): v for k, v in response.headers.items()}
                return delegated, cache_seconds(headers, self._clock())
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            logger.info("No usable %s from %s: %s", WELL_KNOWN_PATH, hostname, exc)
            return None, WELL_KNOWN_ERROR_CACHE_SECONDS
