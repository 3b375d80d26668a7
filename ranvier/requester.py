"""Who is asking: the identity a request was authenticated as.

A client request acts for a user (on one of their devices), possibly through an
application service; a federation request acts for a remote server. Services that act for
users take a `UserRequester`; code that serves both takes `Requester` and matches on the
kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.config.appservices import AppService


@dataclass(frozen=True)
class UserRequester:
    user_id: str
    device_id: str | None
    is_guest: bool
    is_admin: bool
    access_token_id: int | None
    # set when the request came with an application service's as_token: the service acts
    # as `user_id` (its sender, or a user of its namespace it masquerades as)
    app_service: AppService | None = None


@dataclass(frozen=True)
class ServerRequester:
    """A remote homeserver, authenticated by the signature on its request."""

    server_name: str


Requester = UserRequester | ServerRequester
