"""The outbound client finding and reaching servers over the network: a tiny DNS server on
loopback answers SRV and A records, one HTTPS server (certificates from the test CA) serves
well-known answers and the federation endpoint, and each test asserts what that server saw
(spec: server-server-api "Resolving server names", "TLS", "Request Authentication")."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from ranvier.federation.backoff import Backoff, BackoffSettings
from ranvier.federation.client import DomainWhitelist, FederationClient, RetrySettings
from ranvier.federation.connections import Connections
from ranvier.federation.discovery import Route, ServerDiscovery
from ranvier.federation.errors import (
    DestinationUnreachable,
    NotRetrying,
    RemoteRequestFailed,
)
from ranvier.federation.tls import TlsPolicy
from ranvier.protocol.ip_addresses import AddressPolicy
from ranvier.protocol.request_auth import parse_authorization_header
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.storage.database import Database
from ranvier.storage.destinations import DestinationStore
from tests.federation.harness import FederationCA

# every name the test server's certificate is valid for
CERTIFICATE_NAMES = (
    "wk.test",
    "target.test",
    "delegated.test",
    "srv.test",
    "legacy.test",
    "broken.test",
    "redirected.test",
    "127.0.0.1",
)
ORIGIN = "origin.test"


class DnsServer(asyncio.DatagramProtocol):
    """Answers A and SRV questions from `records`; NXDOMAIN for anything else."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, int], list[str]] = {}
        self.transport: Any = None

    def add(self, name: str, rdtype: int, *texts: str) -> None:
        self.records.setdefault((name.lower(), rdtype), []).extend(texts)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        texts = self.records.get((name, question.rdtype))
        if texts:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, question.rdtype, texts
                )
            )
        elif not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


class LoopbackDnsResolver(AbstractResolver):
    """A and AAAA lookups (what aiohttp asks before connecting) from the test DNS server."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = await self._resolver.resolve(host, dns.rdatatype.A)
        return [
            ResolveResult(
                hostname=host,
                host=record.address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for record in answer
        ]

    async def close(self) -> None:
        pass


class RecordingBackoff(Backoff):
    """The backoff rules without a database: nothing is ever backed off from."""

    def __init__(self) -> None:
        self.failed_destinations: list[str] = []

    async def check(self, destination: str) -> None:
        pass

    async def succeeded(self, destination: str) -> None:
        pass

    async def failed(self, destination: str) -> None:
        self.failed_destinations.append(destination)


@dataclass
class Seen:
    host: str
    sni_path: str
    authorization: str | None


@dataclass
class Network:
    dns_server: DnsServer
    resolver: dns.asyncresolver.Resolver
    port: int
    ca: FederationCA
    # hostname (from the Host header) -> (status, body, headers) of its well-known answer
    well_known: dict[str, tuple[int, str, dict[str, str]]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    well_known_hits: list[str] = field(default_factory=list)
    clients: list[FederationClient] = field(default_factory=list)

    def client(
        self,
        *,
        tls: TlsPolicy | None = None,
        addresses: AddressPolicy | None = None,
        backoff: Backoff | None = None,
        whitelist: list[str] | None = None,
        port: int | None = None,
    ) -> FederationClient:
        connections = Connections(
            addresses or AddressPolicy.from_config(SYNAPSE_IP_RANGE_BLACKLIST, ["127.0.0.1"]),
            LoopbackDnsResolver(self.resolver),
        )
        tls = tls or TlsPolicy(custom_ca_files=[str(self.ca.pem_path)])
        client = FederationClient(
            server_name=ORIGIN,
            signing_key=ServerSigningKey.generate("test"),
            connections=connections,
            discovery=ServerDiscovery(
                connections.session,
                tls,
                resolver=self.resolver,
                well_known_port=port or self.port,
            ),
            tls=tls,
            backoff=backoff or RecordingBackoff(),
            domain_whitelist=DomainWhitelist(whitelist),
            retries=RetrySettings(client_timeout_seconds=5, max_short_retries=0),
        )
        self.clients.append(client)
        return client


async def start_https(
    app: web.Application, ca: FederationCA, *names: str
) -> tuple[web.AppRunner, int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    return runner, server.sockets[0].getsockname()[1]


@pytest.fixture
async def network(test_ca: FederationCA) -> AsyncIterator[Network]:
    loop = asyncio.get_running_loop()
    dns_server = DnsServer()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: dns_server, local_addr=("127.0.0.1", 0)
    )
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = transport.get_extra_info("sockname")[1]
    resolver.lifetime = 2.0

    app = web.Application()
    holder: list[Network] = []

    async def well_known(request: web.Request) -> web.Response:
        net = holder[0]
        host = request.host.rsplit(":", 1)[0]
        net.well_known_hits.append(host)
        status, body, headers = net.well_known.get(host, (404, "{}", {}))
        return web.Response(status=status, text=body, headers=headers)

    async def moved(request: web.Request) -> web.Response:
        return web.json_response({"m.server": f"target.test:{holder[0].port}"})

    async def endpoint(request: web.Request) -> web.Response:
        net = holder[0]
        net.requests.append(
            Seen(request.host, request.raw_path, request.headers.get("Authorization"))
        )
        if request.path.endswith("/fail"):
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "no"}, status=403)
        if request.path.endswith("/down"):
            return web.json_response({"errcode": "M_UNKNOWN", "error": "down"}, status=503)
        if request.path.endswith("/streamed"):
            return await streamed(request)
        body = await request.json() if request.can_read_body else None
        return web.json_response({"method": request.method, "body": body})

    async def streamed(request: web.Request) -> web.StreamResponse:
        # a large answer written in pieces, as a big room's send_join arrives
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"pdus": [')
        for n in range(STREAMED_PIECES):
            await response.write((b"," if n else b"") + b'"' + b"x" * 1000 + b'"')
            await asyncio.sleep(0.001)
        await response.write(b"]}")
        await response.write_eof()
        return response

    app.router.add_get("/.well-known/matrix/server", well_known)
    app.router.add_get("/.well-known/matrix/moved", moved)
    app.router.add_route("*", "/_matrix/{tail:.*}", endpoint)
    runner, port = await start_https(app, test_ca, *CERTIFICATE_NAMES)
    net = Network(dns_server, resolver, port, test_ca)
    holder.append(net)
    for name in CERTIFICATE_NAMES[:-1]:
        dns_server.add(name, dns.rdatatype.A, "127.0.0.1")
    try:
        yield net
    finally:
        for client in net.clients:
            await client.close()
        await runner.cleanup()
        transport.close()


PATH = "/_matrix/federation/v1/version"
STREAMED_PIECES = 300


async def test_an_answer_arriving_in_pieces_is_read_whole(network: Network) -> None:
    answer = await network.client().get_json(f"target.test:{network.port}", PATH + "/streamed")
    assert answer == {"pdus": ["x" * 1000] * STREAMED_PIECES}


async def test_ip_literal_with_port(network: Network) -> None:
    client = network.client()
    answer = await client.get_json(f"127.0.0.1:{network.port}", PATH, query={"q": "a b"})
    assert answer == {"method": "GET", "body": None}
    [seen] = network.requests
    assert seen.host == f"127.0.0.1:{network.port}"
    assert seen.sni_path == PATH + "?q=a%20b"
    assert network.well_known_hits == []  # an IP literal asks no well-known


async def test_explicit_port_skips_well_known_and_srv(network: Network) -> None:
    network.dns_server.add("_matrix-fed._tcp.target.test", dns.rdatatype.SRV, "0 0 1 nowhere.test.")
    await network.client().get_json(f"target.test:{network.port}", PATH)
    assert [seen.host for seen in network.requests] == [f"target.test:{network.port}"]
    assert network.well_known_hits == []


async def test_requests_are_signed_for_the_destination(network: Network) -> None:
    client = network.client()
    body = {"hello": ["world"]}
    answer = await client.put_json(f"target.test:{network.port}", PATH + "/x", body)
    assert answer == {"method": "PUT", "body": body}
    [seen] = network.requests
    assert seen.authorization is not None
    header = parse_authorization_header(seen.authorization)
    assert (header.origin, header.destination, header.key) == (
        ORIGIN,
        f"target.test:{network.port}",
        "ed25519:test",
    )


async def test_unauthenticated_requests_carry_no_signature(network: Network) -> None:
    await network.client().get_json(f"target.test:{network.port}", PATH, authenticated=False)
    assert network.requests[0].authorization is None


async def test_well_known_delegation_with_port(network: Network) -> None:
    network.well_known["wk.test"] = (
        200,
        f'{{"m.server": "delegated.test:{network.port}"}}',
        {"Content-Type": "application/json"},
    )
    await network.client().get_json("wk.test", PATH)
    assert network.well_known_hits == ["wk.test"]
    # the delegated name with its port, and no well-known of its own
    assert [seen.host for seen in network.requests] == [f"delegated.test:{network.port}"]


async def test_well_known_delegation_without_port_uses_srv(network: Network) -> None:
    network.well_known["wk.test"] = (200, '{"m.server": "delegated.test"}', {})
    network.dns_server.add(
        "_matrix-fed._tcp.delegated.test", dns.rdatatype.SRV, f"10 5 {network.port} target.test."
    )
    await network.client().get_json("wk.test", PATH)
    # Host (and the certificate) is the delegated name, the connection the SRV target's
    assert [seen.host for seen in network.requests] == ["delegated.test"]


async def test_srv_when_well_known_fails(network: Network) -> None:
    network.dns_server.add(
        "_matrix-fed._tcp.srv.test", dns.rdatatype.SRV, f"10 5 {network.port} target.test."
    )
    await network.client().get_json("srv.test", PATH)
    assert network.well_known_hits == ["srv.test"]  # answered 404
    assert [seen.host for seen in network.requests] == ["srv.test"]


async def test_deprecated_matrix_srv_record_as_fallback(network: Network) -> None:
    network.dns_server.add(
        "_matrix._tcp.legacy.test", dns.rdatatype.SRV, f"10 5 {network.port} target.test."
    )
    await network.client().get_json("legacy.test", PATH)
    assert [seen.host for seen in network.requests] == ["legacy.test"]


async def test_matrix_fed_srv_record_wins_over_the_deprecated_one(network: Network) -> None:
    network.dns_server.add("_matrix._tcp.srv.test", dns.rdatatype.SRV, "10 5 1 target.test.")
    network.dns_server.add(
        "_matrix-fed._tcp.srv.test", dns.rdatatype.SRV, f"10 5 {network.port} target.test."
    )
    await network.client().get_json("srv.test", PATH)
    assert [seen.host for seen in network.requests] == ["srv.test"]


async def test_no_well_known_and_no_srv_means_port_8448(network: Network) -> None:
    discovery = ServerDiscovery(
        network.client()._connections.session,
        TlsPolicy(custom_ca_files=[str(network.ca.pem_path)]),
        resolver=network.resolver,
        well_known_port=network.port,
    )
    assert await discovery.resolve("target.test") == Route(
        "target.test", 8448, "target.test", "target.test"
    )


@pytest.mark.parametrize(
    "answer",
    [
        (200, "not json", {}),
        (200, '{"m.server": 12}', {}),
        (200, '{"m.server": "not a name!"}', {}),
        (500, '{"m.server": "delegated.test:1"}', {}),
        (302, "", {"Location": "/.well-known/matrix/server"}),  # a redirect loop
    ],
)
async def test_well_known_errors_fall_through_to_srv(
    network: Network, answer: tuple[int, str, dict[str, str]]
) -> None:
    network.well_known["broken.test"] = answer
    network.dns_server.add(
        "_matrix-fed._tcp.broken.test", dns.rdatatype.SRV, f"10 5 {network.port} target.test."
    )
    await network.client().get_json("broken.test", PATH)
    assert [seen.host for seen in network.requests] == ["broken.test"]


async def test_well_known_redirects_are_followed(network: Network) -> None:
    network.well_known["redirected.test"] = (
        301,
        "",
        {"Location": f"https://wk.test:{network.port}/.well-known/matrix/moved"},
    )
    await network.client().get_json("redirected.test", PATH)
    assert [seen.host for seen in network.requests] == [f"target.test:{network.port}"]


async def test_well_known_answers_are_cached(network: Network) -> None:
    network.well_known["wk.test"] = (
        200,
        f'{{"m.server": "delegated.test:{network.port}"}}',
        {"Cache-Control": "max-age=3600"},
    )
    client = network.client()
    await client.get_json("wk.test", PATH)
    await client.get_json("wk.test", PATH)
    assert network.well_known_hits == ["wk.test"]
    assert len(network.requests) == 2


async def test_certificate_not_valid_for_the_name_is_refused(
    network: Network, test_ca: FederationCA
) -> None:
    async def reached(request: web.Request) -> web.Response:
        return web.json_response({"reached": True})

    app = web.Application()
    app.router.add_get(PATH, reached)
    runner, port = await start_https(app, test_ca, "other.test")
    try:
        with pytest.raises(DestinationUnreachable, match="TLS"):
            await network.client().get_json(f"target.test:{port}", PATH)
        verify_off = TlsPolicy(verify=False)
        assert await network.client(tls=verify_off).get_json(f"target.test:{port}", PATH) == {
            "reached": True
        }
        whitelisted = TlsPolicy(
            verification_whitelist=["*.test"], custom_ca_files=[str(test_ca.pem_path)]
        )
        answer = await network.client(tls=whitelisted).get_json(f"target.test:{port}", PATH)
        assert answer == {"reached": True}
    finally:
        await runner.cleanup()


async def test_certificate_from_another_ca_is_refused(network: Network) -> None:
    # the system's CAs know nothing of the test CA: a custom list is needed to trust it
    with pytest.raises(DestinationUnreachable, match="TLS"):
        await network.client(tls=TlsPolicy()).get_json(f"target.test:{network.port}", PATH)


async def test_refused_ip_range_is_never_connected_to(network: Network) -> None:
    blacklisted = AddressPolicy.from_config(SYNAPSE_IP_RANGE_BLACKLIST)
    client = network.client(addresses=blacklisted)
    for destination in (f"target.test:{network.port}", f"127.0.0.1:{network.port}"):
        with pytest.raises(DestinationUnreachable, match="refused IP range"):
            await client.get_json(destination, PATH)
    # a well-known lookup keeps to the ranges too
    network.well_known["wk.test"] = (200, f'{{"m.server": "127.0.0.1:{network.port}"}}', {})
    with pytest.raises(DestinationUnreachable):
        await client.get_json("wk.test", PATH)
    assert network.requests == [] and network.well_known_hits == []


async def test_domain_whitelist_refuses_other_servers(network: Network) -> None:
    client = network.client(whitelist=["elsewhere.test"])
    with pytest.raises(DestinationUnreachable, match="federation_domain_whitelist"):
        await client.get_json(f"target.test:{network.port}", PATH)
    assert network.requests == []


async def test_matrix_errors_become_remote_request_failed(network: Network) -> None:
    with pytest.raises(RemoteRequestFailed) as info:
        await network.client().get_json(f"target.test:{network.port}", PATH + "/fail")
    assert (info.value.status, info.value.errcode) == (403, "M_FORBIDDEN")
    assert info.value.body == {"errcode": "M_FORBIDDEN", "error": "no"}


async def test_backoff_after_failures(network: Network, database: Database) -> None:
    store = DestinationStore(database)
    settings = BackoffSettings(
        min_retry_interval_ms=60_000, retry_multiplier=2.0, max_retry_interval_ms=3_600_000
    )
    client = network.client(backoff=Backoff(store, settings))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(DestinationUnreachable) as failure:
        await client.get_json(dead, PATH)
    assert not isinstance(failure.value, NotRetrying)
    row = await store.get(dead)
    assert row is not None and row.retry_interval == 60_000
    assert row.failure_ts is not None and row.retry_last_ts >= row.failure_ts
    # during the backoff nothing is sent, unless the request ignores it
    with pytest.raises(NotRetrying):
        await client.get_json(dead, PATH)
    with pytest.raises(DestinationUnreachable) as again:
        await client.get_json(dead, PATH, ignore_backoff=True)
    assert not isinstance(again.value, NotRetrying)

    # a 5xx answer backs off too; any answer after that ends it
    live = f"127.0.0.1:{network.port}"
    with pytest.raises(RemoteRequestFailed):
        await client.get_json(live, PATH + "/down")
    row = await store.get(live)
    assert row is not None and row.retry_interval == 60_000
    await client.get_json(live, PATH, ignore_backoff=True)
    row = await store.get(live)
    assert row is not None and (row.retry_interval, row.failure_ts) == (0, None)
    await client.get_json(live, PATH)
