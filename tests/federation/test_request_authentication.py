"""Signed requests between two Ranvier servers over TLS, and the backoff an admin sees.

B (`second`) is asked directly with requests signed in the test process with A's own
signing key (or with wrong ones): what B answers shows which signatures it accepts
(spec: server-server-api "Request Authentication"). A's client API then makes A reach a
server that is down, and Synapse's destinations admin API shows and resets the backoff.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from ranvier.config.signing_key import load_signing_key
from ranvier.protocol.request_auth import authorization_header
from ranvier.protocol.signing_keys import ServerSigningKey
from tests.federation.conftest import ServerPair, federating_pair
from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    launch_federating_server,
    register,
)
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, register_user_command

# a query B answers for any signed request: 404 for a user it does not have
QUERY = "/_matrix/federation/v1/query/profile?user_id="
DESTINATIONS = "/_synapse/admin/v1/federation/destinations"


def signing_key_of(server: FederatingServer) -> ServerSigningKey:
    raw = yaml.safe_load(Path(server.config_path).read_text())
    key_path = Path(raw["signing_key_path"])
    if not key_path.is_absolute():
        key_path = Path(server.config_path).parent / key_path
    return load_signing_key(str(key_path))


def query_uri(server: FederatingServer) -> str:
    return QUERY + quote(f"@nobody:{server.server_name}")


def header_for(
    key: ServerSigningKey,
    origin: str,
    destination: str,
    uri: str,
    method: str = "GET",
    content: Any = None,
) -> str:
    return authorization_header(
        key, method=method, uri=uri, origin=origin, destination=destination, content=content
    )


def status_and_errcode(reply: Reply) -> tuple[int, str | None]:
    return reply.status, reply.errcode


def test_a_request_signed_by_a_is_accepted_by_b(two_servers: ServerPair) -> None:
    a, b = two_servers
    uri = query_uri(b)
    header = header_for(signing_key_of(a), a.server_name, b.server_name, uri)
    # past authentication: the user does not exist
    assert status_and_errcode(b.request("GET", uri, headers={"Authorization": header})) == (
        404,
        "M_NOT_FOUND",
    )


def test_one_good_header_among_several_is_enough(two_servers: ServerPair) -> None:
    a, b = two_servers
    uri = query_uri(b)
    good = header_for(signing_key_of(a), a.server_name, b.server_name, uri)
    bad = header_for(ServerSigningKey.generate("other"), a.server_name, b.server_name, uri)
    context = ssl.create_default_context(cafile=str(b.ca.pem_path))
    for first, second, status in ((bad, good, 404), (good, bad, 404), (bad, bad, 401)):
        connection = http.client.HTTPSConnection("localhost", b.port, context=context, timeout=10)
        try:
            connection.putrequest("GET", uri)
            connection.putheader("Authorization", first)
            connection.putheader("Authorization", second)
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == status, response.read()
        finally:
            connection.close()


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("missing", 401),
        ("other scheme", 401),
        # as Synapse: what cannot be read, or names no valid server, is a bad request
        ("malformed", 400),
        ("no sig", 400),
        ("bad signature", 401),
        ("other uri signed", 401),
        ("unknown key", 401),
        ("wrong destination", 401),
        ("invalid origin", 400),
        ("non-numeric port", 400),
    ],
)
def test_refused_signatures(two_servers: ServerPair, case: str, status: int) -> None:
    a, b = two_servers
    uri = query_uri(b)
    key = signing_key_of(a)
    headers: dict[str, str] = {}
    if case == "other scheme":
        headers["Authorization"] = "Bearer abc"
    elif case == "malformed":
        headers["Authorization"] = f'X-Matrix origin="{a.server_name}" key="x"'
    elif case == "no sig":
        headers["Authorization"] = f'X-Matrix origin="{a.server_name}",key="{key.key_id}"'
    elif case == "bad signature":
        good = header_for(key, a.server_name, b.server_name, uri)
        headers["Authorization"] = good.rsplit('sig="', 1)[0] + 'sig="' + "A" * 86 + '"'
    elif case == "other uri signed":
        headers["Authorization"] = header_for(key, a.server_name, b.server_name, uri + "x")
    elif case == "unknown key":
        stranger = ServerSigningKey.generate("unknown")
        headers["Authorization"] = header_for(stranger, a.server_name, b.server_name, uri)
    elif case == "wrong destination":
        headers["Authorization"] = header_for(key, a.server_name, "elsewhere.test", uri)
    elif case == "invalid origin":
        headers["Authorization"] = header_for(key, "not a name!", b.server_name, uri)
    elif case == "non-numeric port":
        headers["Authorization"] = header_for(key, "localhost:http", b.server_name, uri)
    reply = b.request("GET", uri, headers=headers)
    assert status_and_errcode(reply) == (status, "M_UNAUTHORIZED"), reply.body


# one try per request, so a server that is down fails at once
two_servers = federating_pair(federation={"max_short_retries": 0})


@pytest.fixture(scope="module")
def whitelisting_server(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Any:
    directory = tmp_path_factory.mktemp("whitelisting")
    database = {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}
    server = launch_federating_server(
        directory,
        database,
        test_ca,
        federation_domain_whitelist=["allowed.test"],
    )
    try:
        server.wait_until_serving()
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_domain_whitelist_refuses_other_servers(
    two_servers: ServerPair, whitelisting_server: FederatingServer
) -> None:
    a = two_servers.first
    uri = query_uri(whitelisting_server)
    header = header_for(signing_key_of(a), a.server_name, whitelisting_server.server_name, uri)
    reply = whitelisting_server.request("GET", uri, headers={"Authorization": header})
    assert status_and_errcode(reply) == (403, "M_FORBIDDEN")
    assert reply.json()["error"] == f"Federation denied with {a.server_name}."


def admin_of(server: FederatingServer, localpart: str) -> Session:
    done = register_user_command(Path(server.config_path), localpart, DEFAULT_PASSWORD, admin=True)
    assert done.returncode == 0, done.stderr
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": DEFAULT_PASSWORD,
    }
    reply = server.request("POST", CLIENT + "/login", body)
    assert reply.status == 200, reply.body
    result = reply.json()
    return Session(result["user_id"], result["access_token"], result["device_id"])


def test_backoff_shown_and_reset_by_the_admin_api(two_servers: ServerPair) -> None:
    a = two_servers.first
    admin = admin_of(a, "destinations_admin")
    user = register(a, "looker")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{unused.getsockname()[1]}"
    profile = CLIENT + "/profile/" + quote(f"@someone:{dead}")

    assert a.authed(user, "GET", profile).status == 502
    listed = a.authed(admin, "GET", f"{DESTINATIONS}?destination={quote(dead)}").json()
    assert listed["total"] == 1
    [row] = listed["destinations"]
    assert row["destination"] == dead
    assert row["retry_interval"] == 600_000  # destination_min_retry_interval's default
    assert row["failure_ts"] is not None and row["retry_last_ts"] >= row["failure_ts"]
    assert row["last_successful_stream_ordering"] is None
    one = a.authed(admin, "GET", f"{DESTINATIONS}/{quote(dead)}")
    assert one.json() == row

    # profile queries ignore the backoff (as in Synapse): a failure inside it keeps the wait
    assert a.authed(user, "GET", profile).status == 502
    assert a.authed(admin, "GET", f"{DESTINATIONS}/{quote(dead)}").json() == row

    rooms = a.authed(admin, "GET", f"{DESTINATIONS}/{quote(dead)}/rooms").json()
    assert rooms == {"rooms": [], "total": 0}

    reset = a.authed(admin, "POST", f"{DESTINATIONS}/{quote(dead)}/reset_connection", {})
    assert reset.status == 200 and reset.json() == {}
    cleared = a.authed(admin, "GET", f"{DESTINATIONS}/{quote(dead)}").json()
    assert (cleared["retry_interval"], cleared["retry_last_ts"], cleared["failure_ts"]) == (
        0,
        0,
        None,
    )
    again = a.authed(admin, "POST", f"{DESTINATIONS}/{quote(dead)}/reset_connection", {})
    assert status_and_errcode(again) == (400, "M_UNKNOWN")
    # after the reset the lookup is tried again, and fails again
    assert a.authed(user, "GET", profile).status == 502
    assert a.authed(admin, "GET", f"{DESTINATIONS}/{quote(dead)}").json()["retry_interval"] > 0


def test_destinations_admin_api_refusals(two_servers: ServerPair) -> None:
    a = two_servers.first
    admin = admin_of(a, "destinations_refusals")
    user = register(a, "not_an_admin")
    assert status_and_errcode(a.authed(user, "GET", DESTINATIONS)) == (403, "M_FORBIDDEN")
    assert status_and_errcode(a.request("GET", DESTINATIONS)) == (401, "M_MISSING_TOKEN")
    for query in ("order_by=name", "dir=x", "from=-1", "limit=abc"):
        reply = a.authed(admin, "GET", f"{DESTINATIONS}?{query}")
        assert status_and_errcode(reply) == (400, "M_INVALID_PARAM"), query
    for path in ("", "/rooms"):
        reply = a.authed(admin, "GET", f"{DESTINATIONS}/unknown.test{path}")
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
    reply = a.authed(admin, "POST", f"{DESTINATIONS}/unknown.test/reset_connection", {})
    assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
    listing = a.authed(admin, "GET", f"{DESTINATIONS}?limit=0").json()
    assert listing["destinations"] == [] and "total" in listing
