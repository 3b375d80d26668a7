"""Requests from the homeserver to application services (spec: application-service-api
"Homeserver -> Application Service API").

Every request carries the service's hs_token as `Authorization: Bearer`, and also as the
`access_token` query parameter when `use_appservice_legacy_authorization` is on, for
services written before spec v1.4. A service with no `url` is never called. Failures are
answers here, not exceptions: the callers decide (retry a transaction, treat a user as
unknown), and a slow or dead service is cut off by a timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ranvier.config.appservices import AppService

logger = logging.getLogger(__name__)

APP_PREFIX = "/_matrix/app/v1"

# a transaction can be large and the service may persist it before answering; a query
# answers one question and a client is waiting on it
TRANSACTION_TIMEOUT_SECONDS = 60.0
QUERY_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class AppServiceAnswer:
    """What a service answered: `status` None when it could not be reached at all."""

    status: int | None
    body: Any = None
    error: str = ""
    # the body as sent, for messages that quote it (a ping's M_BAD_STATUS)
    text: str = ""
    # unreachable because no answer came in time (rather than refused or broken)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class AppServiceClient:
    def __init__(self, *, legacy_authorization: bool = False) -> None:
        self._legacy_authorization = legacy_authorization
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def put_transaction(
        self, service: AppService, txn_id: int, body: Mapping[str, Any]
    ) -> AppServiceAnswer:
        return await self._request(
            service,
            "PUT",
            f"/transactions/{txn_id}",
            body=body,
            timeout=TRANSACTION_TIMEOUT_SECONDS,
        )

    async def query_user(self, service: AppService, user_id: str) -> bool:
        """Whether the service says it has created `user_id` (a 2xx answer)."""
        answer = await self._request(service, "GET", f"/users/{quote(user_id, safe='')}")
        return answer.ok

    async def query_alias(self, service: AppService, alias: str) -> bool:
        """Whether the service says it has created a room for `alias` (a 2xx answer)."""
        answer = await self._request(service, "GET", f"/rooms/{quote(alias, safe='')}")
        return answer.ok

    async def ping(
        self,
        service: AppService,
        transaction_id: str | None,
        timeout: float = QUERY_TIMEOUT_SECONDS,
    ) -> AppServiceAnswer:
        body = {} if transaction_id is None else {"transaction_id": transaction_id}
        return await self._request(service, "POST", "/ping", body=body, timeout=timeout)

    async def protocol(self, service: AppService, protocol: str) -> AppServiceAnswer:
        return await self._request(
            service, "GET", f"/thirdparty/protocol/{quote(protocol, safe='')}"
        )

    async def thirdparty_lookup(
        self,
        service: AppService,
        kind: str,
        protocol: str | None,
        fields: Mapping[str, Sequence[str]],
    ) -> AppServiceAnswer:
        """`kind` is "user" or "location"; `protocol` None is the reverse lookup."""
        path = f"/thirdparty/{kind}"
        if protocol is not None:
            path += f"/{quote(protocol, safe='')}"
        return await self._request(service, "GET", path, query=fields)

    async def _request(
        self,
        service: AppService,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Sequence[str]] | None = None,
        timeout: float = QUERY_TIMEOUT_SECONDS,
    ) -> AppServiceAnswer:
        if service.url is None:
            return AppServiceAnswer(None, error="the service registered no url")
        params: list[tuple[str, str]] = [
            (key, value) for key, values in (query or {}).items() for value in values
        ]
        if self._legacy_authorization:
            params.append(("access_token", service.hs_token))
        headers = {"Authorization": f"Bearer {service.hs_token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        started = time.monotonic()
        try:
            async with self._client().request(
                method,
                service.url + APP_PREFIX + path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            logger.info(
                "Application service %s: %s %s failed: %s", service.id, method, path, reason
            )
            return AppServiceAnswer(None, error=reason, timed_out=isinstance(exc, TimeoutError))
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        logger.debug(
            "Application service %s: %s %s -> %d in %.0f ms",
            service.id,
            method,
            path,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return AppServiceAnswer(response.status, parsed, text=raw.decode("utf-8", errors="replace"))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session
