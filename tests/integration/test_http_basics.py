"""The running server over real HTTP: discovery endpoints, Matrix error bodies, CORS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ranvier import __version__
from tests.integration.client import request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, make_admin, register

server = module_server(
    public_baseurl="https://matrix.test.localhost",
    serve_server_wellknown=True,
    extra_well_known_client_content={"org.example.custom": {"x": 1}},
    max_request_body_size="4K",
    **REGISTRATION_CONFIG,
)


def test_versions_lists_only_spec_versions(server: RunningServer) -> None:
    reply = request("GET", server.url + "/_matrix/client/versions")
    assert reply.status == 200
    body = reply.json()
    assert "v1.1" in body["versions"]
    assert all(v.startswith("v1.") for v in body["versions"])
    # only MSCs that are served: dehydrated devices, simplified sliding sync
    assert body["unstable_features"] == {
        "org.matrix.msc3814": True,
        "org.matrix.simplified_msc3575": True,
    }


def test_unknown_endpoint_is_404_unrecognized(server: RunningServer) -> None:
    reply = request("GET", server.url + "/_matrix/client/v3/nonexistent")
    assert reply.status == 404
    assert reply.errcode == "M_UNRECOGNIZED"
    assert reply.headers["Content-Type"].startswith("application/json")


def test_wrong_method_is_405_unrecognized(server: RunningServer) -> None:
    reply = request("POST", server.url + "/_matrix/client/versions", {})
    assert reply.status == 405
    assert reply.errcode == "M_UNRECOGNIZED"


LOGIN = "/_matrix/client/v3/login"
BACKGROUND_UPDATES = "/_synapse/admin/v1/background_updates"


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "admin")


def test_bad_json_is_400_not_json(server: RunningServer) -> None:
    url = server.url + LOGIN
    reply = request("POST", url, b"{not json", {"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.errcode == "M_NOT_JSON"


def test_json_that_is_not_an_object_is_bad_json(server: RunningServer) -> None:
    url = server.url + LOGIN
    reply = request("POST", url, b"[1, 2]")
    assert reply.status == 400
    assert reply.errcode == "M_BAD_JSON"


def test_too_large_body_is_413(server: RunningServer) -> None:
    url = server.url + LOGIN
    reply = request("POST", url, b'{"type": "m.login.password", "pad": "' + b"x" * 8192 + b'"}')
    assert reply.status == 413
    assert reply.errcode == "M_TOO_LARGE"


def test_cors_preflight_on_any_path(server: RunningServer) -> None:
    for path in ("/_matrix/client/versions", "/_matrix/client/v3/rooms/x/send/y/z"):
        reply = request("OPTIONS", server.url + path)
        assert reply.status in (200, 204)
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS"):
            assert method in reply.headers["Access-Control-Allow-Methods"]
        for header in ("X-Requested-With", "Content-Type", "Authorization"):
            assert header in reply.headers["Access-Control-Allow-Headers"]


def test_cors_headers_on_answers_and_errors(server: RunningServer) -> None:
    ok = request("GET", server.url + "/_matrix/client/versions")
    missing = request("GET", server.url + "/nope")
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    assert missing.headers["Access-Control-Allow-Origin"] == "*"


def test_well_known_client(server: RunningServer) -> None:
    reply = request("GET", server.url + "/.well-known/matrix/client")
    assert reply.status == 200
    body = reply.json()
    assert body["m.homeserver"] == {"base_url": "https://matrix.test.localhost/"}
    assert body["org.example.custom"] == {"x": 1}
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


def test_well_known_server(server: RunningServer) -> None:
    reply = request("GET", server.url + "/.well-known/matrix/server")
    assert reply.status == 200
    assert reply.json() == {"m.server": "matrix.test.localhost:443"}


def test_server_version(server: RunningServer) -> None:
    reply = request("GET", server.url + "/_synapse/admin/v1/server_version")
    assert reply.json() == {"server_version": __version__}


def test_federation_version(server: RunningServer) -> None:
    reply = request("GET", server.url + "/_matrix/federation/v1/version")
    assert reply.json() == {"server": {"name": "Ranvier", "version": __version__}}


def test_health(server: RunningServer) -> None:
    reply = request("GET", server.url + "/health")
    assert (reply.status, reply.body) == (200, b"OK")


def test_root_page_says_it_runs(server: RunningServer) -> None:
    reply = request("GET", server.url + "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"Ranvier is running" in reply.body


def test_background_updates_need_an_admin(server: RunningServer) -> None:
    user = register(server.url, "not_an_admin")
    for method, path, body in (
        ("GET", "/status", None),
        ("GET", "/enabled", None),
        ("POST", "/enabled", {"enabled": False}),
    ):
        url = server.url + BACKGROUND_UPDATES + path
        missing = request(method, url, body)
        assert (missing.status, missing.errcode) == (401, "M_MISSING_TOKEN")
        forbidden = authed(user, method, url, body)
        assert (forbidden.status, forbidden.errcode) == (403, "M_FORBIDDEN")
        assert forbidden.json()["error"] == "You are not a server admin"


def test_background_updates_status_shape(server: RunningServer, admin: Session) -> None:
    reply = authed(admin, "GET", server.url + BACKGROUND_UPDATES + "/status")
    assert reply.status == 200
    body = reply.json()
    assert body["enabled"] is True
    assert isinstance(body["current_updates"], dict)


def test_background_updates_can_be_paused(server: RunningServer, admin: Session) -> None:
    url = server.url + BACKGROUND_UPDATES + "/enabled"
    try:
        reply = authed(admin, "POST", url, {"enabled": False})
        assert (reply.status, reply.json()) == (200, {"enabled": False})
        status = authed(admin, "GET", server.url + BACKGROUND_UPDATES + "/status")
        assert status.json()["enabled"] is False
        assert authed(admin, "GET", url).json() == {"enabled": False}
    finally:
        assert authed(admin, "POST", url, {"enabled": True}).json() == {"enabled": True}


def test_background_updates_enabled_needs_a_boolean(server: RunningServer, admin: Session) -> None:
    url = server.url + BACKGROUND_UPDATES + "/enabled"
    reply = authed(admin, "POST", url, {"enabled": "yes"})
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


def test_request_ids_in_the_log(server: RunningServer) -> None:
    request("GET", server.url + "/_matrix/client/versions?probe=1")
    log = server.log()
    assert "GET /_matrix/client/versions 200" in log
    assert "- GET-" in log, "access lines carry the request ID"


def test_no_well_known_without_public_baseurl(tmp_path: Path, module_database: Any) -> None:
    # uses its own server: discovery must be absent when nothing says where clients go
    port = free_port()
    running = start_server(write_test_config(tmp_path, module_database, port), port)
    try:
        for path in ("/.well-known/matrix/client", "/.well-known/matrix/server"):
            reply = request("GET", running.url + path)
            assert reply.status == 404
            assert reply.errcode == "M_NOT_FOUND"
    finally:
        assert running.stop() == 0


def test_web_client_location_redirects_root(tmp_path: Path, module_database: Any) -> None:
    port = free_port()
    config = write_test_config(
        tmp_path, module_database, port, web_client_location="https://app.example.org/"
    )
    running = start_server(config, port)
    try:
        reply = request("GET", running.url + "/")
        assert reply.status == 302
        assert reply.headers["Location"] == "https://app.example.org/"
    finally:
        assert running.stop() == 0
