"""Outbound HTTP for URL previews that cannot be pointed at the server's own network.

Every hop of a fetch (the URL, then each redirect, followed here one at a time) is checked
before any connection: only http and https, no URL the admin's patterns refuse, and an IP
literal host must not be blacklisted. Names are resolved by `FilteringResolver`, which
refuses a name if any address it resolves to is blacklisted, so a name pointed at a private
address (or re-pointed between two lookups) leads nowhere; the connector connects only to
the addresses that resolver returns. No proxy settings are taken from the environment.

Refusals answer as Synapse's do: a blacklisted IP literal 403 `M_UNKNOWN`, a name that
resolves into the blacklist (or not at all) 502 `M_UNKNOWN`, an error status from the
site 502, a body over `max_spider_size` 502 `M_TOO_LARGE`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from ranvier.http.errors import MatrixError
from ranvier.services.media.url_preview.addresses import AddressPolicy, parse_ip_literal

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

    def check_target(self, url: str) -> None:
        """Refuse a hop before connecting: its scheme, the admin's URL patterns, an IP
        literal host in the blacklist."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise MatrixError(502, "M_UNKNOWN", f"Cannot fetch {url!r}: {exc}") from exc
        if parts.scheme not in ("http", "https") or not host:
            raise MatrixError(502, "M_UNKNOWN", "Only http and https URLs can be previewed")
        if self._url_refused(url):
            raise url_blocked()
        address = parse_ip_literal(host)
        if address is not None and self._policy.is_blocked(address):
            logger.info("URL preview: blocked IP literal %s", address)
            raise ip_blocked()

    async def fetch(self, url: str, allowed: Callable[[str], bool]) -> FetchedResource:
        """The body of `url` (after at most MAX_REDIRECTS redirects, each checked), or a
        MatrixError saying why not; a media type `allowed` refuses is not downloaded."""
        session = self._get_session()
        for _ in range(MAX_REDIRECTS + 1):
            self.check_target(url)
            try:
                async with asyncio.timeout(self._response_timeout):
                    response = await session.get(url, headers=self._headers, allow_redirects=False)
            except TimeoutError as exc:
                raise MatrixError(
                    504, "M_UNKNOWN", "Timed out waiting for the site to answer"
                ) from exc
            except aiohttp.ClientConnectorError as exc:
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
