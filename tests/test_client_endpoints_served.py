"""Every Client-Server endpoint of the spec is served, except those a later issue brings.

The endpoint list is a copy of the spec's (tests/protocol/spec/client_server_endpoints.txt).
Each endpoint is sent to the real server, on both engines, with an access token that is no
one's and a JSON body of `{}`: an endpoint that is served answers something of its own (401
for an unknown token, 400 for the empty body, 404 M_NOT_FOUND for the made-up IDs, ...);
one that is not is answered by the router with 404 or 405 `M_UNRECOGNIZED`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.client import request
from tests.integration.conftest import module_database, module_server
from tests.integration.homeserver import RunningServer

__all__ = ["module_database"]  # the fixture module_server's servers use

SPEC_LIST = Path(__file__).parent / "protocol" / "spec" / "client_server_endpoints.txt"

# Endpoints a later issue brings, each with the issue that names it. Nothing else may be
# missing: the test fails on an endpoint that is served although it is listed here, so the
# list shrinks as those issues land.
NOT_YET_SERVED: dict[tuple[str, str], int] = {}

# Endpoints whose right answer here is the router's 404 M_UNRECOGNIZED, with why.
UNROUTED_BY_DESIGN = {
    # spec: 404 M_UNRECOGNIZED is how a homeserver that offers only the legacy
    # authentication API (as Ranvier, and Synapse without an OAuth 2.0 server) says so
    ("GET", "/_matrix/client/v1/auth_metadata"): "legacy authentication only",
    # served by a policy server on its own domain (MSC4284); a homeserver that is not one
    # has nothing to say there, as Synapse
    ("GET", "/.well-known/matrix/policy_server"): "policy servers only",
    # single sign-on is routed only with oidc_providers configured, as in Synapse (this
    # server has none); tests/sso drives both with a real provider
    ("GET", "/_matrix/client/v3/login/sso/redirect"): "single sign-on configured only",
    ("GET", "/_matrix/client/v3/login/sso/redirect/{idpId}"): "single sign-on configured only",
}

# what each path parameter becomes: IDs nothing in the database has
SAMPLES = {
    "userId": "@nobody:example.org",
    "roomId": "!nowhere:example.org",
    "roomIdOrAlias": "!nowhere:example.org",
    "roomAlias": "#nowhere:example.org",
    "eventId": "$no-such-event",
    "serverName": "example.org",
    "mediaId": "nomedia",
    "fileName": "file.txt",
    "deviceId": "NODEVICE",
    "filterId": "1",
    "keyName": "displayname",
    "kind": "override",
    "ruleId": "no.such.rule",
    "receiptType": "m.read",
    "relType": "m.thread",
    "eventType": "m.room.message",
    "type": "org.example.type",
    "stateKey": "",
    "txnId": "txn1",
    "tag": "u.tag",
    "version": "1",
    "sessionId": "nosession",
    "protocol": "irc",
    "networkId": "network",
    "appserviceId": "service",
    "idpId": "idp",
}


def spec_endpoints() -> list[tuple[str, str]]:
    endpoints = []
    for line in SPEC_LIST.read_text().splitlines():
        if line and not line.startswith("#"):
            method, path = line.split()
            endpoints.append((method, path))
    return endpoints


def concrete(path: str) -> str:
    for name, value in SAMPLES.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    assert "{" not in path, f"no sample value for a parameter of {path}"
    return path


def is_unrouted(status: int, body: bytes) -> bool:
    """The router's answer for a path or method no endpoint serves."""
    return status in (404, 405) and b'"M_UNRECOGNIZED"' in body


# the endpoints that are served only when configured, configured
server = module_server(
    login_via_existing_session={"enabled": True},
    url_preview_enabled=True,
    url_preview_ip_range_blacklist=["127.0.0.0/8"],
)


def test_the_list_is_the_spec_s() -> None:
    endpoints = spec_endpoints()
    assert len(endpoints) == len(set(endpoints)) == 164
    # the exceptions name endpoints the spec has
    assert set(NOT_YET_SERVED) | set(UNROUTED_BY_DESIGN) <= set(endpoints)


@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in spec_endpoints()]
)
def test_every_client_server_endpoint_is_served(
    server: RunningServer, method: str, path: str
) -> None:
    body = b"{}" if method in ("PUT", "POST") else None
    reply = request(
        method,
        server.url + concrete(path),
        body,
        {"Authorization": "Bearer not_anyones_token", "Content-Type": "application/json"},
    )
    excepted = (method, path) in NOT_YET_SERVED or (method, path) in UNROUTED_BY_DESIGN
    if excepted:
        # served now: take it off the list of exceptions
        assert is_unrouted(reply.status, reply.body), (reply.status, reply.body)
    else:
        assert not is_unrouted(reply.status, reply.body), (reply.status, reply.body)
