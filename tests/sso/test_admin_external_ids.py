"""The admin API's view of single sign-on identities (Synapse's `external_ids`), with a real
provider: what an admin links is what signing in reaches."""

from __future__ import annotations

from tests.integration.client import request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import make_admin, register
from tests.sso.test_oidc_login import (
    SERVER_NAME,
    displayname,
    log_in_with_token,
    sign_in,
    token_from_confirmation,
    whoami,
)


def test_admin_api_external_ids(server: RunningServer) -> None:
    admin = make_admin(server.config_path, "sso_admin")
    admin_api = f"{server.url}/_synapse/admin"
    _, page = sign_in(server, "alice-sub")
    log_in_with_token(server, token_from_confirmation(page))
    alice_id = f"@alice:{SERVER_NAME}"

    reply = request("GET", f"{admin_api}/v2/users/{alice_id}", headers=admin.headers)
    assert reply.status == 200
    assert reply.json()["external_ids"] == [
        {"auth_provider": "oidc-main", "external_id": "alice-sub"}
    ]
    lookup = f"{admin_api}/v1/auth_providers/oidc-main/users/alice-sub"
    reply = request("GET", lookup, headers=admin.headers)
    assert reply.status == 200 and reply.json() == {"user_id": alice_id}
    reply = request(
        "GET", f"{admin_api}/v1/auth_providers/oidc-main/users/nobody", headers=admin.headers
    )
    assert reply.status == 404 and reply.errcode == "M_NOT_FOUND"
    dora = register(server.url, "dora")
    assert request("GET", lookup, headers=dora.headers).status == 403

    # an admin links an identity to an existing account: signing in with it reaches that account
    identity = [{"auth_provider": "oidc-existing", "external_id": "outsider-sub"}]
    reply = request(
        "PUT", f"{admin_api}/v2/users/{dora.user_id}", {"external_ids": identity}, admin.headers
    )
    assert reply.status == 200 and reply.json()["external_ids"] == identity
    _, page = sign_in(server, "outsider-sub", idp="oidc-existing")
    assert whoami(server, log_in_with_token(server, token_from_confirmation(page))) == dora.user_id

    # someone else's identity is refused, and nothing else in the request is applied
    erin = register(server.url, "erin")
    reply = request(
        "PUT",
        f"{admin_api}/v2/users/{erin.user_id}",
        {"external_ids": identity, "displayname": "Not Applied"},
        admin.headers,
    )
    assert reply.status == 409
    assert displayname(server, erin.user_id) == "erin"
    reply = request("GET", f"{admin_api}/v2/users/{erin.user_id}", headers=admin.headers)
    assert reply.json()["external_ids"] == []

    # an empty list unlinks
    reply = request(
        "PUT", f"{admin_api}/v2/users/{dora.user_id}", {"external_ids": []}, admin.headers
    )
    assert reply.status == 200 and reply.json()["external_ids"] == []
    reply = request(
        "GET",
        f"{admin_api}/v1/auth_providers/oidc-existing/users/outsider-sub",
        headers=admin.headers,
    )
    assert reply.status == 404
