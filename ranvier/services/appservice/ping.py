"""A service asks the homeserver to call it: `POST /_matrix/client/v1/appservice/{id}/ping`
(spec: application-service-api "Pinging"), which checks that the homeserver can reach the
service's `url` with the hs_token, and how long a round trip takes."""

from __future__ import annotations

import time
from collections.abc import Callable

from ranvier.errors import MatrixError
from ranvier.requester import UserRequester
from ranvier.services.appservice.client import AppServiceClient
from ranvier.services.appservice.registry import AppServiceRegistry

# a service that does not answer its ping within this is reported as timed out
PING_TIMEOUT_SECONDS = 15.0


class AppServicePing:
    def __init__(
        self,
        registry: AppServiceRegistry,
        client: AppServiceClient,
        timeout_seconds: float = PING_TIMEOUT_SECONDS,
        on_reachable: Callable[[str], None] | None = None,
    ) -> None:
        # told the ID of a service that answered its ping (the transaction sender retries)
        self._on_reachable = on_reachable
        self._registry = registry
        self._client = client
        self._timeout = timeout_seconds

    async def ping(
        self, requester: UserRequester, appservice_id: str, transaction_id: str | None
    ) -> int:
        """The round trip in milliseconds, or the spec's error for what went wrong."""
        service = requester.app_service
        if service is None or service.id != appservice_id:
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "Only the application service itself, with its as_token, may ping it",
            )
        if service.url is None:
            raise MatrixError(
                400, "M_URL_NOT_SET", "The application service registered no url to ping"
            )
        started = time.monotonic()
        answer = await self._client.ping(service, transaction_id, timeout=self._timeout)
        duration_ms = round((time.monotonic() - started) * 1000)
        if answer.timed_out:
            raise MatrixError(
                504, "M_CONNECTION_TIMEOUT", "The application service did not answer in time"
            )
        if answer.status is None:
            raise MatrixError(
                502,
                "M_CONNECTION_FAILED",
                f"Could not reach the application service: {answer.error}",
            )
        if not answer.ok:
            error = MatrixError(502, "M_BAD_STATUS", f"Ping returned status {answer.status}")
            # spec: the service's status and body ride along (`status` would clash with
            # MatrixError's own argument)
            error.extra.update(status=answer.status, body=answer.text)
            raise error
        if self._on_reachable is not None:
            self._on_reachable(service.id)
        return duration_ms
