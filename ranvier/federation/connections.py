"""The one HTTP session outbound federation uses, with its connections held to
`ip_range_blacklist`: the resolver drops refused addresses from every answer (so a name
cannot lead to them, and DNS rebinding finds nothing to rebind to), and every socket
checks the address it is about to connect to, which also covers IP literals (aiohttp
does not ask the resolver about those) and redirects."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import AddrInfoType

from ranvier.protocol.ip_addresses import AddressPolicy

logger = logging.getLogger(__name__)

# per destination, as Synapse's connection pool
CONNECTIONS_PER_HOST = 10


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or its first `limit` + 1 bytes when it is longer (for the caller
    to refuse). Not `content.read(n)`: that gives only what has arrived so far, which cut
    large answers (a send_join of a big room) short."""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            break
    return bytes(body[: limit + 1])


class RefusedAddressError(OSError):
    """Every address of a name, or the one about to be connected to, is in a refused IP
    range (ip_range_blacklist without an ip_range_whitelist exception)."""


class FilteringResolver(AbstractResolver):
    """Resolves with `inner` and keeps only the addresses `policy` allows."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not self._policy.is_blocked_text(r["host"])]
        if len(allowed) < len(results):
            dropped = sorted({r["host"] for r in results} - {r["host"] for r in allowed})
            logger.info("Dropped %s from the addresses of %s (ip_range_blacklist)", dropped, host)
        if not allowed:
            raise RefusedAddressError(f"every address of {host} is in a refused IP range")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(policy: AddressPolicy) -> Callable[[AddrInfoType], socket.socket]:
    def make(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if family not in (socket.AF_INET, socket.AF_INET6) or policy.is_blocked_text(address[0]):
            logger.info("Refused to connect to %r (ip_range_blacklist)", address)
            raise RefusedAddressError(f"{address[0]} is in a refused IP range")
        return socket.socket(family, type_, proto)

    return make


class Connections:
    """Creates the session on first use; `close` at server stop."""

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner_resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    @property
    def policy(self) -> AddressPolicy:
        return self._policy

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=FilteringResolver(self._policy, self._inner_resolver),
                socket_factory=guarded_socket_factory(self._policy),
                limit_per_host=CONNECTIONS_PER_HOST,
            )
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
