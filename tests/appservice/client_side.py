"""What the client-side tests share: a server with three services registered (the
conftest's `appservice`, which owns `@_fake_*` and `#_fake_*` and is not rate limited; `irc`,
which owns `@irc_*` and `#irc_*` and is; `walled`, whose as_token is only good from 10.0.0.0/8),
and requests made with a service's as_token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG

SERVER_NAME = "test.localhost"


def irc_service() -> FakeAppService:
    return FakeAppService(
        id="irc",
        sender_localpart="irc_bot",
        user_regex="@irc_.*",
        alias_regex="#irc_.*",
        extra_registration={"rate_limited": True},
    )


def walled_service() -> FakeAppService:
    return FakeAppService(
        id="walled",
        sender_localpart="walled_bot",
        user_regex="@walled_.*",
        alias_regex="#walled_.*",
        extra_registration={"ip_range_whitelist": ["10.0.0.0/8"]},
    )


def services_server(
    tmp_path_factory: pytest.TempPathFactory,
    database: dict[str, Any],
    services: list[FakeAppService],
    **overrides: Any,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    with serving(
        directory,
        database,
        **{
            **REGISTRATION_CONFIG,
            "app_service_config_files": [s.write_registration(directory) for s in services],
            **overrides,
        },
    ) as running:
        yield running


def as_request(
    server: RunningServer,
    service: FakeAppService,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    **query: str,
) -> Reply:
    """A client-server request (path under /_matrix/client/v3) with the service's as_token
    in the Authorization header, `query` as the query string."""
    url = server.url + CLIENT + path
    if query:
        url += "?" + urlencode(query)
    return request(
        method, url, body, {"Authorization": f"Bearer {service.as_token}", **(headers or {})}
    )


def register_puppet(
    server: RunningServer, service: FakeAppService, localpart: str, **extra: Any
) -> Reply:
    return as_request(
        server,
        service,
        "POST",
        "/register",
        {"type": "m.login.application_service", "username": localpart, **extra},
    )


def user_id(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def room_path(room_id: str) -> str:
    return f"/rooms/{quote(room_id)}"
