"""Requests to other homeservers: discovered, verified, signed, and backed off from.

spec: server-server-api "Resolving server names", "Request Authentication", "TLS".
A request goes to the route discovery gives, over a connection held to the IP ranges and
certificate rules, with an X-Matrix signature naming us and the destination. Connection
failures are retried a few times (`federation.max_short_retries`); transactions, which
nobody waits on, retry longer (`max_long_retries`, answers 5xx and 429 too). A failure
that lasts, or a 5xx answer, starts the destination's backoff, and any answer ends it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from ranvier.federation.backoff import Backoff
from ranvier.federation.connections import Connections, RefusedAddressError, read_limited
from ranvier.federation.discovery import DiscoveryError, Route, ServerDiscovery
from ranvier.federation.errors import (
    DestinationUnreachable,
    FederationError,
    RemoteRequestFailed,
)
from ranvier.federation.tls import TlsPolicy
from ranvier.protocol.request_auth import authorization_header
from ranvier.protocol.server_names import server_name_problem
from ranvier.protocol.signing_keys import ServerSigningKey

logger = logging.getLogger(__name__)

# the largest JSON answer read (Synapse's limit for federation answers)
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
# retry n (from 0) waits min(max_short_retry_delay, 0.5 s * 2**n), with jitter
_FIRST_RETRY_DELAY_SECONDS = 0.5
# a long retry n (from 0) waits min(max_long_retry_delay, 4 s * 4**n), with jitter
_FIRST_LONG_RETRY_DELAY_SECONDS = 4.0

Query = Mapping[str, str | Sequence[str]]
T = TypeVar("T")
# takes a file's bytes as they arrive (FederationClient.get_file)
Sink = Callable[[AsyncIterator[bytes]], Awaitable[T]]
_FILE_CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class RetrySettings:
    client_timeout_seconds: float = 60.0
    max_short_retries: int = 3
    max_short_retry_delay_seconds: float = 2.0
    max_long_retries: int = 10
    max_long_retry_delay_seconds: float = 60.0


class DomainWhitelist:
    """`federation_domain_whitelist`: None lets every server federate."""

    def __init__(self, domains: Sequence[str] | None) -> None:
        self._domains = None if domains is None else frozenset(d.lower() for d in domains)

    def allows(self, server_name: str) -> bool:
        return self._domains is None or server_name.lower() in self._domains


class FederationRequests(Protocol):
    """The requests services make of other servers: FederationClient's, which tests
    replace with scripted transports."""

    async def get_json(
        self,
        destination: str,
        path: str,
        *,
        query: Query | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any: ...

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        query: Query | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any: ...

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        query: Query | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
        long_retries: bool = False,
    ) -> Any: ...


class FederationClient:
    def __init__(
        self,
        *,
        server_name: str,
        signing_key: ServerSigningKey,
        connections: Connections,
        discovery: ServerDiscovery,
        tls: TlsPolicy,
        backoff: Backoff,
        domain_whitelist: DomainWhitelist,
        retries: RetrySettings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._server_name = server_name
        self._signing_key = signing_key
        self._connections = connections
        self._discovery = discovery
        self._tls = tls
        self._backoff = backoff
        self._whitelist = domain_whitelist
        self._retries = retries
        self._sleep = sleep

    @property
    def backoff(self) -> Backoff:
        return self._backoff

    async def close(self) -> None:
        await self._connections.close()

    async def get_json(
        self,
        destination: str,
        path: str,
        *,
        query: Query | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any:
        """GET `path` (percent-encoded as it is to be sent) on `destination`; the JSON
        answer. Raises DestinationUnreachable (NotRetrying during backoff) or
        RemoteRequestFailed."""
        return await self._request(
            "GET", destination, path, None, query, authenticated, timeout, ignore_backoff
        )

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        query: Query | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any:
        return await self._request(
            "POST", destination, path, body, query, authenticated, timeout, ignore_backoff
        )

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        query: Query | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
        long_retries: bool = False,
    ) -> Any:
        """PUT `body`; with `long_retries` (for transactions), a connection failure or a
        5xx or 429 answer is tried again up to `max_long_retries` times, waiting longer."""
        return await self._request(
            "PUT",
            destination,
            path,
            body,
            query,
            authenticated,
            timeout,
            ignore_backoff,
            long_retries=long_retries,
        )

    async def get_file(
        self,
        destination: str,
        path: str,
        *,
        query: Query | None = None,
        authenticated: bool,
        multipart: bool,
        max_size: int,
        timeout: float,
        sink: Sink[T],
    ) -> RemoteFile[T]:
        """GET a file (media) from `destination`: with `multipart`, a federation media
        endpoint's multipart/mixed answer, whose file part may redirect elsewhere (spec:
        server-server-api "Content Repository"); without, a legacy media endpoint's plain
        answer. One attempt and no backoff, as Synapse for media: a client is waiting, and a
        server whose media is down is not therefore down for federation. Raises
        DestinationUnreachable, RemoteRequestFailed (an error answer) or FileTooLarge (past
        `max_size` bytes, read no further). The bytes go to `sink` as they arrive (to a
        file, not memory); what it returns comes back in the RemoteFile."""
        problem = server_name_problem(destination)
        if problem is not None:
            raise DestinationUnreachable(destination, f"not a server name: {problem}")
        if not self._whitelist.allows(destination):
            raise DestinationUnreachable(destination, "not in federation_domain_whitelist")
        try:
            route = await self._discovery.resolve(destination)
        except (ValueError, DiscoveryError) as exc:
            raise DestinationUnreachable(destination, str(exc)) from exc
        target = path + (f"?{_encode_query(query)}" if query else "")
        headers = {"Host": route.host_header, "User-Agent": "Ranvier"}
        if authenticated:
            headers["Authorization"] = authorization_header(
                self._signing_key,
                method="GET",
                uri=target,
                origin=self._server_name,
                destination=destination,
                content=None,
            )
        host = f"[{route.host}]" if ":" in route.host else route.host
        url = URL(f"https://{host}:{route.port}{target}", encoded=True)
        session = self._connections.session()
        try:
            async with asyncio.timeout(timeout):
                async with session.get(
                    url,
                    headers=headers,
                    ssl=self._tls.context_for(route.tls_name),
                    server_hostname=route.tls_name,
                    allow_redirects=False,
                ) as response:
                    await _raise_for_error(destination, response)
                    if not multipart:
                        return await _read_file(destination, response, max_size, sink)
                    return await self._read_multipart(destination, response, max_size, sink)
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise DestinationUnreachable(destination, f"TLS: {exc}") from exc
        except TimeoutError as exc:
            raise DestinationUnreachable(destination, "timed out") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise DestinationUnreachable(destination, str(exc) or type(exc).__name__) from exc

    async def _read_multipart(
        self, destination: str, response: aiohttp.ClientResponse, max_size: int, sink: Sink[T]
    ) -> RemoteFile[T]:
        if response.content_type != "multipart/mixed":
            raise RemoteRequestFailed(
                destination, response.status, None, None, "the answer is not multipart/mixed"
            )
        reader = aiohttp.MultipartReader.from_response(response)
        # the first part is JSON metadata, empty in this version of the spec
        metadata = await reader.next()
        if not isinstance(metadata, aiohttp.BodyPartReader):
            raise RemoteRequestFailed(destination, response.status, None, None, "no metadata")
        await metadata.read()
        part = await reader.next()
        if not isinstance(part, aiohttp.BodyPartReader):
            raise RemoteRequestFailed(destination, response.status, None, None, "no file part")
        location = part.headers.get("Location")
        if location is None:
            return await _read_file(destination, part, max_size, sink)
        # spec: the file is where Location says; an ordinary GET, not a signed request,
        # still over the connections held to ip_range_blacklist and trusting what
        # federation trusts (federation_custom_ca_list)
        target = URL(location)
        if target.scheme not in ("http", "https") or not target.host:
            raise RemoteRequestFailed(
                destination, response.status, None, None, "Location is not an http(s) URL"
            )
        async with self._connections.session().get(
            target,
            allow_redirects=True,
            max_redirects=5,
            ssl=self._tls.context_for(target.host),
        ) as redirected:
            await _raise_for_error(destination, redirected)
            return await _read_file(destination, redirected, max_size, sink)

    async def _request(
        self,
        method: str,
        destination: str,
        path: str,
        body: Any,
        query: Query | None,
        authenticated: bool,
        timeout: float | None,
        ignore_backoff: bool,
        *,
        long_retries: bool = False,
    ) -> Any:
        problem = server_name_problem(destination)
        if problem is not None:
            raise DestinationUnreachable(destination, f"not a server name: {problem}")
        if not self._whitelist.allows(destination):
            raise DestinationUnreachable(destination, "not in federation_domain_whitelist")
        if not ignore_backoff:
            await self._backoff.check(destination)
        try:
            answer = await self._send_with_retries(
                method, destination, path, body, query, authenticated, timeout, long_retries
            )
        except DestinationUnreachable:
            await self._backoff.failed(destination)
            raise
        except RemoteRequestFailed as exc:
            if exc.status >= 500:
                await self._backoff.failed(destination)
            else:
                await self._backoff.succeeded(destination)
            raise
        await self._backoff.succeeded(destination)
        return answer

    async def _send_with_retries(
        self,
        method: str,
        destination: str,
        path: str,
        body: Any,
        query: Query | None,
        authenticated: bool,
        timeout: float | None,
        long_retries: bool = False,
    ) -> Any:
        try:
            route = await self._discovery.resolve(destination)
        except (ValueError, DiscoveryError) as exc:
            raise DestinationUnreachable(destination, str(exc)) from exc
        target = path + (f"?{_encode_query(query)}" if query else "")
        encoded = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        attempt = 0
        retries = self._retries
        while True:
            try:
                return await self._send_once(
                    method, destination, route, target, body, encoded, authenticated, timeout
                )
            except (_Retryable, RemoteRequestFailed) as exc:
                if isinstance(exc, RemoteRequestFailed):
                    if not long_retries or not (exc.status >= 500 or exc.status == 429):
                        raise
                    if attempt >= retries.max_long_retries:
                        raise
                    cause: object = exc
                elif attempt >= (
                    retries.max_long_retries if long_retries else retries.max_short_retries
                ):
                    raise DestinationUnreachable(destination, str(exc.__cause__)) from exc
                else:
                    cause = exc.__cause__
                if long_retries:
                    delay = min(
                        retries.max_long_retry_delay_seconds,
                        _FIRST_LONG_RETRY_DELAY_SECONDS * 4**attempt,
                    )
                else:
                    delay = min(
                        retries.max_short_retry_delay_seconds,
                        _FIRST_RETRY_DELAY_SECONDS * 2**attempt,
                    )
                delay *= random.uniform(0.8, 1.4)
                logger.info(
                    "%s %s%s failed (%s); retrying in %.1fs",
                    method,
                    destination,
                    path,
                    cause,
                    delay,
                )
                attempt += 1
                await self._sleep(delay)

    async def _send_once(
        self,
        method: str,
        destination: str,
        route: Route,
        target: str,
        body: Any,
        encoded: bytes | None,
        authenticated: bool,
        timeout: float | None,
    ) -> Any:
        headers = {"Host": route.host_header, "User-Agent": "Ranvier"}
        if encoded is not None:
            headers["Content-Type"] = "application/json"
        if authenticated:
            headers["Authorization"] = authorization_header(
                self._signing_key,
                method=method,
                uri=target,
                origin=self._server_name,
                destination=destination,
                content=body,
            )
        host = f"[{route.host}]" if ":" in route.host else route.host
        url = URL(f"https://{host}:{route.port}{target}", encoded=True)
        seconds = timeout if timeout is not None else self._retries.client_timeout_seconds
        try:
            async with self._connections.session().request(
                method,
                url,
                data=encoded,
                headers=headers,
                ssl=self._tls.context_for(route.tls_name),
                server_hostname=route.tls_name,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                raw = await read_limited(response, MAX_RESPONSE_BYTES)
                status = response.status
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise DestinationUnreachable(destination, f"TLS: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            if _refused_range(exc):
                raise DestinationUnreachable(destination, str(exc.os_error)) from exc
            raise _Retryable() from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if isinstance(exc, RefusedAddressError):
                raise DestinationUnreachable(destination, str(exc)) from exc
            raise _Retryable() from exc
        if len(raw) > MAX_RESPONSE_BYTES:
            raise RemoteRequestFailed(destination, status, None, None, "the answer is too large")
        try:
            parsed = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
            if 200 <= status < 300:
                raise RemoteRequestFailed(
                    destination, status, None, None, "the answer is not JSON"
                ) from None
        if 200 <= status < 300:
            return parsed
        errcode = error = None
        if isinstance(parsed, dict):
            errcode = parsed.get("errcode") if isinstance(parsed.get("errcode"), str) else None
            error = parsed.get("error") if isinstance(parsed.get("error"), str) else None
        raise RemoteRequestFailed(destination, status, errcode, parsed, error or "")


@dataclass(frozen=True)
class RemoteFile(Generic[T]):
    """A file another server sent: what its headers said of it, how long it was, and what
    the caller's sink made of its bytes."""

    content_type: str | None
    content_disposition: str | None
    length: int
    kept: T


class FileTooLarge(FederationError):
    """The file is larger than the caller accepts; nothing more of it was read."""

    def __init__(self, destination: str, limit: int) -> None:
        super().__init__(destination, f"the file is larger than {limit} bytes")
        self.limit = limit


async def _raise_for_error(destination: str, response: aiohttp.ClientResponse) -> None:
    if 200 <= response.status < 300:
        return
    raw = await read_limited(response, 64 * 1024)
    try:
        parsed = json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        parsed = None
    errcode = error = None
    if isinstance(parsed, dict):
        errcode = parsed.get("errcode") if isinstance(parsed.get("errcode"), str) else None
        error = parsed.get("error") if isinstance(parsed.get("error"), str) else None
    raise RemoteRequestFailed(destination, response.status, errcode, parsed, error or "")


async def _read_file(
    destination: str,
    source: aiohttp.ClientResponse | aiohttp.BodyPartReader,
    max_size: int,
    sink: Sink[T],
) -> RemoteFile[T]:
    declared = source.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_size:
        raise FileTooLarge(destination, max_size)
    length = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal length
        async for chunk in _chunks_of(source):
            length += len(chunk)
            if length > max_size:
                raise FileTooLarge(destination, max_size)
            yield chunk

    kept = await sink(chunks())
    return RemoteFile(
        source.headers.get("Content-Type"),
        source.headers.get("Content-Disposition"),
        length,
        kept,
    )


async def _chunks_of(
    source: aiohttp.ClientResponse | aiohttp.BodyPartReader,
) -> AsyncIterator[bytes]:
    if isinstance(source, aiohttp.ClientResponse):
        async for chunk in source.content.iter_chunked(_FILE_CHUNK_SIZE):
            yield chunk
    else:
        while chunk := await source.read_chunk(_FILE_CHUNK_SIZE):
            yield chunk


def is_unknown_endpoint(exc: RemoteRequestFailed) -> bool:
    """Whether `exc` says the remote server does not serve the endpoint at all, so an
    older version of it is worth trying: 404 or 405 with M_UNRECOGNIZED or no Matrix error
    body (as older servers answer; a 404 with another errcode is a real answer, such as
    an unknown room), or 400 M_UNRECOGNIZED (as older Synapses answer)."""
    if exc.status in (404, 405):
        return exc.errcode == "M_UNRECOGNIZED" or not isinstance(exc.body, dict)
    return exc.status == 400 and exc.errcode == "M_UNRECOGNIZED"


class _Retryable(Exception):
    """A connection-level failure worth another try; the cause says what happened."""


def _refused_range(exc: aiohttp.ClientConnectorError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, RefusedAddressError):
            return True
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc.os_error, RefusedAddressError)


def _encode_query(query: Query) -> str:
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.extend((name, item) for item in value)
    return urlencode(pairs, quote_via=quote, safe="")


__all__ = [
    "DestinationUnreachable",
    "DomainWhitelist",
    "FederationClient",
    "FederationError",
    "FederationRequests",
    "FileTooLarge",
    "RemoteFile",
    "RemoteRequestFailed",
    "RetrySettings",
    "is_unknown_endpoint",
]
