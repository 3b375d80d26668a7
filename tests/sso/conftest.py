"""One OpenID provider and one homeserver signing in through it per test module, on each
engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG
from tests.sso.provider import OidcClient, RunningProvider, running_provider

__all__ = ["module_database"]

MAIN = OidcClient("ranvier-main", "main-secret")
EXISTING = OidcClient("ranvier-existing", "existing-secret", "client_secret_post")
TRUSTED_CLIENT = "http://client.example/trusted"
CLIENT = "http://client.example/app"


@pytest.fixture(scope="module")
def ports(module_database: dict[str, Any]) -> tuple[int, int]:
    """(homeserver, provider): the provider must know the homeserver's callback first."""
    return free_port(), free_port()


@pytest.fixture(scope="module")
def provider(
    ports: tuple[int, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProvider]:
    base = f"http://127.0.0.1:{ports[0]}/_synapse/client/oidc"
    main = dataclasses.replace(MAIN, backchannel_logout_uri=f"{base}/backchannel_logout")
    directory = tmp_path_factory.mktemp("oidc")
    with running_provider(ports[1], f"{base}/callback", [main, EXISTING], directory) as running:
        yield running


def provider_config(issuer: str) -> list[dict[str, Any]]:
    """Providers at the same issuer: `main` (registers new users, checks a claim),
    `existing` (signs in users who exist already) and `formpost` (the callback is a POST)."""
    mapping = {
        "config": {
            "localpart_template": "{{ user.preferred_username }}",
            "display_name_template": "{{ user.name }}",
            # empty for accounts without one: nothing is bound
            "email_template": "{{ user.email }}",
        }
    }
    return [
        {
            "idp_id": "main",
            "idp_name": "Main Provider",
            "idp_brand": "org.example.main",
            "issuer": issuer,
            "client_id": MAIN.id,
            "client_secret": MAIN.secret,
            "scopes": ["openid", "profile"],
            # the provider runs on plain http on loopback
            "skip_verification": True,
            "user_mapping_provider": mapping,
            "attribute_requirements": [{"attribute": "team", "value": "blue"}],
            "backchannel_logout_enabled": True,
        },
        {
            "idp_id": "existing",
            "idp_name": "Existing Users",
            "issuer": issuer,
            "client_id": EXISTING.id,
            "client_secret": EXISTING.secret,
            "client_auth_method": "client_secret_post",
            "scopes": ["openid", "profile"],
            "skip_verification": True,
            "allow_existing_users": True,
            # so a test can reach the nonce check, which PKCE would otherwise pre-empt
            "pkce_method": "never",
            "user_profile_method": "userinfo_endpoint",
            "user_mapping_provider": mapping,
        },
        {
            # the provider answers with a form the browser posts to the callback
            "idp_id": "formpost",
            "idp_name": "Form Post",
            "issuer": issuer,
            "client_id": MAIN.id,
            "client_secret": MAIN.secret,
            "scopes": ["openid", "profile"],
            "skip_verification": True,
            "additional_authorization_parameters": {"response_mode": "form_post"},
            "user_mapping_provider": mapping,
        },
    ]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    ports: tuple[int, int],
    provider: RunningProvider,
) -> Iterator[RunningServer]:
    port = ports[0]
    path = write_test_config(
        tmp_path_factory.mktemp("hs"),
        module_database,
        port,
        **REGISTRATION_CONFIG,
        public_baseurl=f"http://127.0.0.1:{port}/",
        oidc_providers=provider_config(provider.issuer),
        sso={"client_whitelist": [TRUSTED_CLIENT], "update_profile_information": True},
    )
    running = start_server(path, port)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()
