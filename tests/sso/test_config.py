"""Start-up checks of `oidc_providers` and `sso`: what a homeserver.yaml asks for either takes
effect or refuses start-up with a message saying what to change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ranvier.config.generate import generate_config
from ranvier.config.loader import load_config
from tests.config.files import refusal, write_config

GOOD: dict[str, Any] = {
    "idp_id": "keycloak",
    "idp_name": "Our Keycloak",
    "issuer": "https://id.example.com/realms/staff",
    "client_id": "matrix",
    "client_secret": "s3cret",
}


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    generate_config("example.org", tmp_path / "homeserver.yaml", tmp_path / "data")
    return tmp_path / "homeserver.yaml"


def provider(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_a_provider_is_accepted_with_synapse_defaults(generated: Path) -> None:
    config = load_config(write_config(generated, oidc_providers=[provider()], sso=None))
    [loaded] = config.oidc_providers
    assert loaded.auth_provider_id == "oidc-keycloak"
    assert loaded.scopes == ["openid"] and loaded.discover and loaded.enable_registration
    assert not loaded.allow_existing_users and loaded.pkce_method == "auto"
    assert config.sso.client_whitelist == [] and not config.sso.update_profile_information
    assert load_config(write_config(generated, oidc_providers=None)).oidc_providers == []


def test_the_id_oidc_keeps_its_name(generated: Path) -> None:
    # Synapse's older oidc_config used `oidc`; its users' external IDs carry it
    config = load_config(write_config(generated, oidc_providers=[provider(idp_id="oidc")]))
    assert config.oidc_providers[0].auth_provider_id == "oidc"


def test_client_secret_path_is_read(generated: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    entry = provider(client_secret=None, client_secret_path=str(secret))
    config = load_config(write_config(generated, oidc_providers=[entry]))
    assert config.oidc_providers[0].client_secret == "from-a-file"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"issuer": "http://id.example.com"}, "must use https"),
        ({"idp_id": "has space"}, "may only contain letters"),
        ({"idp_icon": "https://x/icon.png"}, "must be an mxc:// URI"),
        ({"idp_brand": "Not Valid"}, "idp_brand"),
        ({"client_secret": None}, "client_secret (or client_secret_path) is needed"),
        ({"client_secret_path": "/nonexistent/secret"}, "set either client_secret"),
        (
            {"client_secret": None, "client_secret_path": "/nonexistent/secret"},
            "cannot read client_secret_path",
        ),
        ({"client_secret": None, "client_secret_path": "secret"}, "must be an absolute path"),
        ({"discover": False}, "with discover: false, set authorization_endpoint"),
        ({"client_auth_method": "private_key_jwt"}, "client_auth_method"),
        ({"client_secret_jwt_key": {"key": "k"}}, "client_secret_jwt_key"),
        (
            {"backchannel_logout_enabled": True, "scopes": ["profile"], "discover": True},
            "backchannel_logout_enabled needs the openid scope",
        ),
        ({"user_mapping_provider": {"module": "my.Mapper"}}, "custom mapping provider"),
        (
            {"user_mapping_provider": {"config": {"localpart_template": "{{ user.x "}}},
            "not a valid Jinja2 template",
        ),
        (
            {"user_mapping_provider": {"config": {"email_template": "{{ user.email"}}},
            "email_template",
        ),
        ({"attribute_requirements": [{"attribute": "team"}]}, "exactly one of `value`"),
        ({"frobnicate": True}, "frobnicate"),
    ],
)
def test_bad_providers_refuse_start_up(
    generated: Path, changes: dict[str, Any], expected: str
) -> None:
    message = refusal(write_config(generated, oidc_providers=[provider(**changes)]))
    assert expected in message, message


def test_duplicate_ids_refuse_start_up(generated: Path) -> None:
    message = refusal(write_config(generated, oidc_providers=[provider(), provider()]))
    assert "idp_id 'keycloak' is used by more than one provider" in message


def test_sso_client_whitelist_must_be_urls(generated: Path) -> None:
    message = refusal(write_config(generated, sso={"client_whitelist": ["element"]}))
    assert "not an http(s) URL prefix" in message


def test_skip_verification_allows_plain_http_for_testing(generated: Path) -> None:
    entry = provider(issuer="http://127.0.0.1:9999", skip_verification=True)
    assert load_config(write_config(generated, oidc_providers=[entry])).oidc_providers
