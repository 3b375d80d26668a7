"""A new user who signs in through a provider accepts the policy first when
user_consent.require_at_registration asks for it (Synapse's sso_new_user_consent.html), on
both engines: no account is made until they do, and their consent is recorded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.client import request
from tests.integration.homeserver import RunningServer, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, make_admin
from tests.sso.conftest import provider_config
from tests.sso.provider import RunningProvider
from tests.sso.test_oidc_login import (
    API,
    SERVER_NAME,
    log_in_with_token,
    sign_in,
    token_from_confirmation,
    whoami,
)

VERSION = "1.0"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    ports: tuple[int, int],
    provider: RunningProvider,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    policies = directory / "consent" / "en"
    policies.mkdir(parents=True)
    (policies / f"{VERSION}.html").write_text("<p>The policy.</p>")
    (policies / "success.html").write_text("<p>Thanks.</p>")
    port = ports[0]
    path = write_test_config(
        directory,
        module_database,
        port,
        **REGISTRATION_CONFIG,
        public_baseurl=f"http://127.0.0.1:{port}/",
        form_secret="a-long-random-test-secret",
        user_consent={
            "template_dir": str(directory / "consent"),
            "version": VERSION,
            "require_at_registration": True,
        },
        oidc_providers=provider_config(provider.issuer),
    )
    running = start_server(path, port)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()


def accept(browser: Any, page: Any, version: str = VERSION) -> Any:
    assert re.search(r'action="new_user_consent"', page.body), page.body
    url = page.url.rsplit("/", 1)[0] + "/new_user_consent"
    return browser.go(url, {"accepted_version": version})


def consent_version(server: RunningServer, admin: Any, user_id: str) -> Any:
    reply = request("GET", f"{server.url}/_synapse/admin/v2/users/{user_id}", headers=admin.headers)
    assert reply.status == 200, reply.body
    return reply.json()["consent_version"]


def test_a_mapped_new_user_accepts_the_policy_before_the_account_is_made(
    server: RunningServer,
) -> None:
    admin = make_admin(server.config_path, "consent_admin")
    browser, page = sign_in(server, "alice-sub")
    assert page.status == 200 and page.url.endswith("/_synapse/client/new_user_consent")
    assert f"@alice:{SERVER_NAME}" in page.body and "/_matrix/consent?v=1.0" in page.body
    # nothing is made yet
    assert request("GET", f"{server.url}{API}/profile/@alice:{SERVER_NAME}").status == 404
    # a page of an older policy is shown again rather than accepted
    stale = accept(browser, page, "0.9")
    assert stale.status == 400 and "new_user_consent" in stale.body
    page = accept(browser, stale)
    session = log_in_with_token(server, token_from_confirmation(page))
    assert whoami(server, session) == f"@alice:{SERVER_NAME}"
    assert consent_version(server, admin, session.user_id) == VERSION


def test_a_picked_username_waits_for_the_policy_too(server: RunningServer) -> None:
    browser, page = sign_in(server, "nameless-sub")
    assert page.url.endswith("/pick_username/account_details"), page.body
    page = browser.go(page.url, {"username": "chosen", "use_display_name": "true"})
    assert page.url.endswith("/_synapse/client/new_user_consent"), page.body
    assert f"@chosen:{SERVER_NAME}" in page.body
    assert request("GET", f"{server.url}{API}/profile/@chosen:{SERVER_NAME}").status == 404
    page = accept(browser, page)
    session = log_in_with_token(server, token_from_confirmation(page))
    assert whoami(server, session) == f"@chosen:{SERVER_NAME}"
    reply = request("GET", f"{server.url}{API}/profile/{session.user_id}/displayname")
    assert reply.json() == {"displayname": "No Name"}
