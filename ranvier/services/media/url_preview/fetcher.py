"""Outbound HTTP for URL previews that cannot be pointed at the server's own network.

Three checks stand between a URL and a connection, for the URL and for each redirect
(followed here one at a time):

- `check_target`, before any I/O: only http and https, no URL the admin's patterns refuse,
  and no host that is, or could be read as, a blacklisted IP literal. It reads the host as
  yarl normalises it (the very `URL` object then handed to aiohttp, so IDNA folding of
  fullwidth digits and dots to `127.0.0.1` is seen) and as written, with every Unicode
  digit and dot folded to ASCII. This is for a fast, clear refusal, not the guarantee.
- `FilteringResolver` refuses a name if any address it resolves to is blacklisted, so a
  name pointed at a private address (or re-pointed between two lookups) leads nowhere.
- `GuardedSocket` is the guarantee: every socket the connector opens is one, and its
  `connect` refuses any address that is not a plain numeric one outside the blacklist.
  That is the address the kernel is given, after every URL parser and resolver (aiohttp
  skips the resolver for hosts it takes for IP literals, and both asyncio and uvloop may
  resolve again inside `sock_connect`), so no spelling of a host can get past it.

No proxy settings are taken from the environment.

Refusals answer as Synapse's do: a blacklisted IP literal 403 `M_UNKNOWN` (so does an
address the socket guard refuses: only an IP literal can reach it), a name that resolves
into the blacklist (or not at all) 502 `M_UNKNOWN`, an error status from the site 502, a
body over `max_spider_size` 502 `M_TOO_LARGE`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import AddrInfoType
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from ranvier.errors import MatrixError
from ranvier.protocol.ip_addresses import AddressPolicy, parse_ip_literal

logger = logging.getLogger(__name__)

USER_AGENT = "Ranvier (bot; URL preview)"
MAX_REDIRECTS = 5
CONNECT_TIMEOUT_SECONDS = 15.0
# until the response headers arrive, then for reading the body (Synapse's 60 s and 30 s)
RESPONSE_TIMEOUT_SECONDS = 60.0
BODY_TIMEOUT_SECONDS = 30.0
_REDIRECTS = {301, 302, 303, 307, 308}


class BlockedAddressError(OSError):
    """A name resolved to an address previews may not connect to."""


class BlockedConnectionError(OSError):
    """A socket was about to connect to an address previews may not reach."""

    def __init__(self) -> None:
        # one fixed message: happy eyeballs keeps the error's type only when every
        # attempt failed with the same text
        super().__init__("connection to an address previews may not reach refused")


class GuardedSocket(socket.socket):
    """A socket that refuses to connect to an address `policy` blocks, or to anything but
    a plain numeric address (which the C library might resolve). Without a policy (a copy
    made by `dup`, say) it connects nowhere."""

    def __init__(
        self,
        family: socket.AddressFamily | int = -1,
        type: socket.SocketKind | int = -1,
        proto: int = -1,
        fileno: int | None = None,
        *,
        policy: AddressPolicy | None = None,
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self._policy = policy

    # asyncio and uvloop both end their sock_connect here, with the address after any
    # resolution they did themselves
    def connect(self, address: Any, /) -> None:
        refuse_blocked(self._policy, address)
        super().connect(address)

    def connect_ex(self, address: Any, /) -> int:
        refuse_blocked(self._policy, address)
        return super().connect_ex(address)


def refuse_blocked(policy: AddressPolicy | None, address: object) -> None:
    """Raise BlockedConnectionError unless `address` (a socket address tuple) is a plain
    numeric address `policy` allows."""
    host = address[0] if isinstance(address, tuple) and address else None
    if policy is None or policy.is_blocked_text(host):
        logger.warning("URL preview: refused to connect to %r", address)
        raise BlockedConnectionError()


def guarded_socket_factory(policy: AddressPolicy) -> Callable[[AddrInfoType], socket.socket]:
    """Sockets for the connector: the address checked before the socket exists (so an
    event loop never resolves an unchecked host), and again at `connect`."""

    def make(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise BlockedConnectionError()
        refuse_blocked(policy, address)
        return GuardedSocket(family, type_, proto, policy=policy)

    return make


class FilteringResolver(AbstractResolver):
    """Resolves with `inner` and refuses the whole answer if any address in it is
    blacklisted: a mixed answer is how DNS rebinding sneaks a private address in."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        blocked = [
            result["host"] for result in results if self._policy.is_blocked_text(result["host"])
        ]
        if blocked:
            logger.info("URL preview: %s resolves to blocked %s", host, ", ".join(blocked))
            raise BlockedAddressError(f"{host} resolves to an address previews may not reach")
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class FetchedResource:
    # where the body finally came from, after redirects
    url: str
    status: int
    # the Content-Type header as sent, and its media type lowercased
    content_type: str | None
    media_type: str
    body: bytes
    filename: str | None
    etag: str | None


def ip_blocked() -> MatrixError:
    return MatrixError(403, "M_UNKNOWN", "IP address blocked")


def dns_failure() -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", "DNS resolution failure during URL preview generation")


def url_blocked() -> MatrixError:
    return MatrixError(403, "M_UNKNOWN", "URL blocked by url pattern blacklist entry")


class PreviewFetcher:
    """GETs for URL previews; one aiohttp session, made on first use."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        max_size: int,
        accept_language: list[str],
        url_refused: Callable[[str], bool],
        resolver: AbstractResolver | None = None,
        response_timeout: float = RESPONSE_TIMEOUT_SECONDS,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self._policy = policy
        self._response_timeout = response_timeout
        self._body_timeout = body_timeout
        self._max_size = max_size
        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept-Language": ", ".join(accept_language),
        }
        self._url_refused = url_refused
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=FilteringResolver(self._policy, self._resolver),
                # every connection goes through a fresh, checked resolution
                use_dns_cache=False,
                limit=50,
                socket_factory=guarded_socket_factory(self._policy),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # no HTTP(S)_PROXY: a proxy would resolve names beyond our checks
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_target(self, url: str) -> URL:
        """Refuse a hop before connecting: its scheme, the admin's URL patterns, a host
        that is or reads as an IP literal in the blacklist. Returns the URL to request,
        parsed once so that the host checked is the host aiohttp connects to."""
        try:
            target = URL(url)
            parts = urlsplit(url)
            target.port  # noqa: B018 - raises ValueError on a bad port
            parts.port  # noqa: B018
        except ValueError as exc:
            raise MatrixError(502, "M_UNKNOWN", f"Cannot fetch {url!r}: {exc}") from exc
        if target.scheme not in ("http", "https") or not target.raw_host or not parts.hostname:
            raise MatrixError(502, "M_UNKNOWN", "Only http and https URLs can be previewed")
        if self._url_refused(url):
            raise url_blocked()
        for host in (target.raw_host, parts.hostname):
            address = parse_ip_literal(host)
            if address is not None and self._policy.is_blocked(address):
                logger.info("URL preview: blocked IP literal %s (%r)", address, host)
                raise ip_blocked()
        return target

    async def fetch(self, url: str, allowed: Callable[[str], bool]) -> FetchedResource:
        """The body of `url` (after at most MAX_REDIRECTS redirects, each checked), or a
        MatrixError saying why not; a media type `allowed` refuses is not downloaded."""
        session = self._get_session()
        for _ in range(MAX_REDIRECTS + 1):
            target = self.check_target(url)
            try:
                async with asyncio.timeout(self._response_timeout):
                    response = await session.get(
                        target, headers=self._headers, allow_redirects=False
                    )
            except TimeoutError as exc:
                raise MatrixError(
                    504, "M_UNKNOWN", "Timed out waiting for the site to answer"
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedConnectionError):
                    raise ip_blocked() from exc
                if isinstance(exc.os_error, (BlockedAddressError, socket.gaierror)) or (
                    isinstance(exc.os_error.__cause__, socket.gaierror)
                ):
                    raise dns_failure() from exc
                raise MatrixError(
                    502, "M_UNKNOWN", f"Could not connect to {exc.host}: {exc.strerror}"
                ) from exc
            except aiohttp.InvalidURL as exc:
                raise MatrixError(502, "M_UNKNOWN", f"Cannot fetch {url!r}") from exc
            except aiohttp.ClientError as exc:
                raise MatrixError(502, "M_UNKNOWN", f"Fetching the URL failed: {exc}") from exc
            async with response:
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location:
                    url = urljoin(str(response.url), location)
                    continue
                return await self._read(url, response, allowed)
        raise MatrixError(502, "M_UNKNOWN", f"More than {MAX_REDIRECTS} redirects")

    async def _read(
        self, url: str, response: aiohttp.ClientResponse, allowed: Callable[[str], bool]
    ) -> FetchedResource:
        if response.status > 299:
            logger.info("URL preview: %s answered %d", url, response.status)
            raise MatrixError(502, "M_UNKNOWN", f"Got error {response.status}")
        content_type = response.headers.get("Content-Type")
        if not allowed(media_type_of(content_type)):
            raise MatrixError(
                502,
                "M_UNKNOWN",
                f"Requested file's content type not allowed for this operation: {content_type}",
            )
        if response.content_length is not None and response.content_length > self._max_size:
            raise too_large(self._max_size)
        chunks: list[bytes] = []
        length = 0
        try:
            async with asyncio.timeout(self._body_timeout):
                async for chunk in response.content.iter_chunked(64 * 1024):
                    length += len(chunk)
                    # counted after decompression, so a small gzip bomb stops here too
                    if length > self._max_size:
                        raise too_large(self._max_size)
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise MatrixError(
                502, "M_TOO_LARGE", "Requested file took too long to download"
            ) from exc
        except aiohttp.ClientError as exc:
            raise MatrixError(502, "M_UNKNOWN", f"Failed to download the body: {exc}") from exc
        return FetchedResource(
            url=url,
            status=response.status,
            content_type=content_type,
            media_type=media_type_of(content_type),
            body=b"".join(chunks),
            filename=filename_of(response.headers.get("Content-Disposition")),
            etag=response.headers.get("ETag"),
        )


def too_large(max_size: int) -> MatrixError:
    return MatrixError(502, "M_TOO_LARGE", f"Requested file is too large > {max_size} bytes")


def media_type_of(content_type: str | None) -> str:
    if not content_type:
        return "application/octet-stream"
    return content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"


def filename_of(content_disposition: str | None) -> str | None:
    if not content_disposition:
        return None
    message = Message()
    message["Content-Disposition"] = content_disposition
    filename = message.get_filename()
    return filename or None
