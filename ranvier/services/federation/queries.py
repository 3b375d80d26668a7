"""Asking other servers: the profile and directory queries (spec: server-server-api
"Querying for information"), on behalf of the client API's profile and alias lookups.

What the client sees follows Synapse: a server that cannot be reached is 502; the remote
server's 404 (and for profiles its 403) is passed on with its errcode; any other answer, or
one that is not the shape the spec gives, is 502 for profiles. For aliases anything but
a well-formed answer is 404, as Synapse treats an alias it could not resolve.
"""

from __future__ import annotations

import logging
from typing import Any

from ranvier.errors import MatrixError
from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import FederationError, RemoteRequestFailed

logger = logging.getLogger(__name__)

PROFILE_QUERY = "/_matrix/federation/v1/query/profile"
DIRECTORY_QUERY = "/_matrix/federation/v1/query/directory"


def _server_of(identifier: str) -> str:
    return identifier.partition(":")[2]


class RemoteQueries:
    def __init__(self, client: FederationRequests) -> None:
        self._client = client

    async def profile(self, user_id: str, field: str | None) -> dict[str, Any]:
        """The profile (or one field of it) of a user of another server, from that server."""
        query = {"user_id": user_id} if field is None else {"user_id": user_id, "field": field}
        destination = _server_of(user_id)
        try:
            # as Synapse: a lookup a user waits for is tried even while backing off
            answer = await self._client.get_json(
                destination, PROFILE_QUERY, query=query, ignore_backoff=True
            )
        except RemoteRequestFailed as exc:
            if exc.status in (403, 404):
                default = "M_FORBIDDEN" if exc.status == 403 else "M_NOT_FOUND"
                raise MatrixError(
                    exc.status, exc.errcode or default, _remote_message(exc, "Profile not found")
                ) from None
            logger.info("Profile query for %s failed: %s", user_id, exc)
            raise MatrixError(502, "M_UNKNOWN", "Failed to fetch profile") from None
        except FederationError as exc:
            logger.info("Profile query for %s failed: %s", user_id, exc)
            raise MatrixError(502, "M_UNKNOWN", "Failed to fetch profile") from None
        if not isinstance(answer, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{destination} answered with a malformed profile")
        return answer

    async def directory(self, alias: str) -> tuple[str, list[str]]:
        """(room_id, servers) for an alias of another server, from that server."""
        destination = _server_of(alias)
        try:
            answer = await self._client.get_json(
                destination, DIRECTORY_QUERY, query={"room_alias": alias}, ignore_backoff=True
            )
        except RemoteRequestFailed as exc:
            logger.info("Directory query for %s failed: %s", alias, exc)
            if exc.status == 404:
                raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found") from None
            raise MatrixError(502, "M_UNKNOWN", "Failed to fetch alias") from None
        except FederationError as exc:
            logger.info("Directory query for %s failed: %s", alias, exc)
            raise MatrixError(502, "M_UNKNOWN", "Failed to fetch alias") from None
        room_id = answer.get("room_id") if isinstance(answer, dict) else None
        servers = answer.get("servers") if isinstance(answer, dict) else None
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        return room_id, [server for server in servers if isinstance(server, str)]


def _remote_message(exc: RemoteRequestFailed, default: str) -> str:
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    return error if isinstance(error, str) and error else default
