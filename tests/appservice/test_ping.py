"""POST /_matrix/client/v1/appservice/{appserviceId}/ping (spec: appservice_ping.yaml):
the homeserver calls the service's /_matrix/app/v1/ping and reports the round trip, or
the spec's error for what went wrong. Both engines."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.config.appservices import AppService
from ranvier.errors import MatrixError
from ranvier.requester import UserRequester
from ranvier.services.appservice.client import AppServiceClient
from ranvier.services.appservice.ping import AppServicePing
from ranvier.services.appservice.registry import AppServiceRegistry
from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import fresh_service
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, free_port, serving
from tests.integration.matrix import REGISTRATION_CONFIG, register

PING = "/_matrix/app/v1/ping"


@pytest.fixture(scope="module")
def appservice(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    yield from fresh_service()


@pytest.fixture(scope="module")
def refusing(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    """Answers its pings 401 with its own error body."""
    yield from fresh_service(
        id="refusing",
        sender_localpart="refusing_bot",
        user_regex="@refusing_.*",
        alias_regex="#refusing_.*",
        answers={("POST", PING): lambda _: (401, {"errcode": "M_UNKNOWN_TOKEN", "error": "who?"})},
    )


def offline(name: str, url: str | None) -> FakeAppService:
    """A registration whose url answers nothing (or is null); never started."""
    return FakeAppService(
        id=name,
        sender_localpart=f"{name}_bot",
        user_regex=f"@{name}_.*",
        alias_regex=f"#{name}_.*",
        extra_registration={"url": url},
    )


@pytest.fixture(scope="module")
def silent() -> FakeAppService:
    return offline("silent", None)


@pytest.fixture(scope="module")
def gone() -> FakeAppService:
    # a free port: nothing listens there
    return offline("gone", f"http://127.0.0.1:{free_port()}")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
    refusing: FakeAppService,
    silent: FakeAppService,
    gone: FakeAppService,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    services = [appservice, refusing, silent, gone]
    with serving(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[service.write_registration(directory) for service in services],
    ) as running:
        yield running


def ping(server: RunningServer, appservice_id: str, token: str | None, body: Any = None) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{server.url}/_matrix/client/v1/appservice/{quote(appservice_id)}/ping"
    return request("POST", url, {} if body is None else body, headers)


def test_a_service_pings_itself(server: RunningServer, appservice: FakeAppService) -> None:
    reply = ping(server, appservice.id, appservice.as_token, {"transaction_id": "mautrix-1"})
    assert reply.status == 200, reply.body
    assert isinstance(reply.json()["duration_ms"], int) and reply.json()["duration_ms"] >= 0
    pinged = [r for r in appservice.requests if r.path == PING]
    assert pinged[-1].method == "POST"
    assert pinged[-1].body == {"transaction_id": "mautrix-1"}
    assert pinged[-1].authorization == f"Bearer {appservice.hs_token}"

    # without a transaction ID the service is pinged all the same
    assert ping(server, appservice.id, appservice.as_token).status == 200
    assert "transaction_id" not in [r for r in appservice.requests if r.path == PING][-1].body
    # MSC2659's unstable path, which older bridges call
    unstable = (
        f"{server.url}/_matrix/client/unstable/fi.mau.msc2659/appservice/{appservice.id}/ping"
    )
    reply = request("POST", unstable, {}, {"Authorization": f"Bearer {appservice.as_token}"})
    assert reply.status == 200 and "duration_ms" in reply.json()


def test_only_the_service_itself_may_ping_it(
    server: RunningServer, appservice: FakeAppService, refusing: FakeAppService
) -> None:
    alice = register(server.url, "alice")
    asked = len(refusing.requests)
    for token in (alice.access_token, appservice.as_token):
        reply = ping(server, refusing.id, token)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), reply.body
    reply = ping(server, "no_such_service", appservice.as_token)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    reply = ping(server, appservice.id, None)
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")
    reply = ping(server, appservice.id, "not a token")
    assert (reply.status, reply.errcode) == (401, "M_UNKNOWN_TOKEN")
    # none of those reached the service
    assert len(refusing.requests) == asked


def test_a_malformed_body_is_refused(server: RunningServer, appservice: FakeAppService) -> None:
    reply = ping(server, appservice.id, appservice.as_token, {"transaction_id": 5})
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    url = f"{server.url}/_matrix/client/v1/appservice/{appservice.id}/ping"
    reply = request("POST", url, b"[]", {"Authorization": f"Bearer {appservice.as_token}"})
    assert reply.status == 400 and reply.errcode in ("M_BAD_JSON", "M_NOT_JSON")


def test_a_service_without_a_url_cannot_be_pinged(
    server: RunningServer, silent: FakeAppService
) -> None:
    reply = ping(server, silent.id, silent.as_token)
    assert (reply.status, reply.errcode) == (400, "M_URL_NOT_SET")


def test_a_bad_status_is_reported_with_the_services_answer(
    server: RunningServer, refusing: FakeAppService
) -> None:
    reply = ping(server, refusing.id, refusing.as_token, {"transaction_id": "t"})
    assert (reply.status, reply.errcode) == (502, "M_BAD_STATUS")
    body = reply.json()
    assert body["status"] == 401
    assert '"M_UNKNOWN_TOKEN"' in body["body"]


def test_an_unreachable_service_is_a_connection_failure(
    server: RunningServer, gone: FakeAppService
) -> None:
    reply = ping(server, gone.id, gone.as_token)
    assert (reply.status, reply.errcode) == (502, "M_CONNECTION_FAILED")


async def test_a_service_that_does_not_answer_in_time_is_a_timeout() -> None:
    # accepts connections (the kernel's backlog) and never answers them
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    service = AppService(
        id="mute",
        url=f"http://127.0.0.1:{port}",
        as_token="as",
        hs_token="hs",
        sender="@mute_bot:test.localhost",
    )
    client = AppServiceClient()
    requester = UserRequester(
        user_id=service.sender,
        device_id=None,
        is_guest=False,
        is_admin=False,
        access_token_id=None,
        app_service=service,
    )
    try:
        pinger = AppServicePing(AppServiceRegistry([service]), client, timeout_seconds=0.3)
        with pytest.raises(MatrixError) as raised:
            await pinger.ping(requester, "mute", None)
    finally:
        await client.close()
        listener.close()
    assert (raised.value.status, raised.value.errcode) == (504, "M_CONNECTION_TIMEOUT")
