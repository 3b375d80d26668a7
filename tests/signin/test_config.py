"""Start-up with captcha, consent and JWT options: what is read (keys from files), and what
is refused, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from ranvier.config import load_config
from ranvier.config.captcha import DEFAULT_SITEVERIFY_API
from tests.config.conftest import generated
from tests.config.files import refusal, write_config
from tests.signin.conftest import write_policy_templates

__all__ = ["generated"]

CONSENT = {"template_dir": "policy", "version": "1.0"}


def test_captcha_keys_inline_or_from_files(generated: Path) -> None:
    (generated.parent / "public").write_text("site-key\n")
    (generated.parent / "private").write_text("secret-key\n")
    config = load_config(
        write_config(
            generated,
            enable_registration=True,
            enable_registration_captcha=True,
            recaptcha_public_key_path="public",
            recaptcha_private_key_path="private",
        )
    )
    assert config.recaptcha_public_key == "site-key"
    assert config.recaptcha_private_key == "secret-key"
    assert config.recaptcha_siteverify_api == DEFAULT_SITEVERIFY_API
    # the keys are implemented, not "not used"
    assert config.not_used_keys == ()


def test_captcha_alone_is_enough_verification_for_open_registration(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            enable_registration=True,
            enable_registration_captcha=True,
            recaptcha_public_key="p",
            recaptcha_private_key="s",
        )
    )
    assert config.enable_registration_captcha


@pytest.mark.parametrize("missing", ["recaptcha_public_key", "recaptcha_private_key"])
def test_captcha_without_its_keys_is_refused(generated: Path, missing: str) -> None:
    keys = {"recaptcha_public_key": "p", "recaptcha_private_key": "s"}
    del keys[missing]
    message = refusal(write_config(generated, enable_registration_captcha=True, **keys))
    assert f"enable_registration_captcha: {missing} (or {missing}_path) is required" in message


def test_unreadable_key_file_and_bad_siteverify_url(generated: Path) -> None:
    message = refusal(
        write_config(
            generated,
            recaptcha_private_key_path="nowhere",
            recaptcha_siteverify_api="ftp://example.org/verify",
        )
    )
    assert "recaptcha_private_key_path: cannot read" in message
    assert "recaptcha_siteverify_api: 'ftp://example.org/verify' is not an http(s) URL" in message


def test_consent_config_read(generated: Path) -> None:
    write_policy_templates(generated.parent / "policy", "1.0")
    (generated.parent / "form").write_text("form-secret\n")
    config = load_config(
        write_config(
            generated,
            user_consent={**CONSENT, "require_at_registration": True},
            form_secret_path="form",
            public_baseurl="https://matrix.example.org",
        )
    )
    assert config.user_consent is not None
    assert config.user_consent.template_dir == str(generated.parent / "policy")
    assert config.user_consent.policy_name == "Privacy Policy"
    assert config.form_secret == "form-secret"


def test_consent_needs_its_secret_link_base_and_templates(generated: Path) -> None:
    message = refusal(write_config(generated, user_consent={**CONSENT, "version": "2.0"}))
    assert "user_consent: the consent form is signed with form_secret" in message
    assert "user_consent: the link to the policy is built from public_baseurl" in message
    assert "is not a directory" in message
    write_policy_templates(generated.parent / "policy", "1.0")
    message = refusal(generated)
    assert "policy/en/2.0.html' is missing" in message


def test_consent_server_notice_needs_server_notices(generated: Path) -> None:
    write_policy_templates(generated.parent / "policy", "1.0")
    notice = {"msgtype": "m.text", "body": "Please accept %(consent_uri)s"}
    message = refusal(
        write_config(
            generated,
            user_consent={**CONSENT, "server_notice_content": notice},
            form_secret="f",
            public_baseurl="https://matrix.example.org",
        )
    )
    assert "user_consent.server_notice_content: the notice is sent as a server notice" in message
    config = load_config(
        write_config(generated, server_notices={"system_mxid_localpart": "notices"})
    )
    assert config.user_consent is not None
    assert config.user_consent.server_notice_content == notice


def test_consent_resource_without_a_policy_is_refused(generated: Path) -> None:
    message = refusal(
        write_config(
            generated, listeners=[{"port": 8008, "resources": [{"names": ["client", "consent"]}]}]
        )
    )
    assert "the 'consent' resource serves the policy configured in 'user_consent'" in message


def test_jwt_config_read(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            jwt_config={
                "enabled": True,
                "secret": "a-long-enough-shared-secret",
                "algorithm": "HS256",
                "issuer": "https://issuer.example",
                "audiences": "ranvier",
            },
        )
    )
    assert config.jwt_config.audiences == ["ranvier"]
    assert config.jwt_config.subject_claim == "sub"


@pytest.mark.parametrize(
    ("jwt_config", "expected"),
    [
        ({"enabled": True, "algorithm": "HS256"}, "secret is required"),
        ({"enabled": True, "secret": "s", "algorithm": "none"}, "algorithm must be one of"),
        ({"enabled": True, "secret": "s"}, "algorithm must be one of"),
        ({"enabled": True, "secret": "not a pem", "algorithm": "RS256"}, "PEM public key"),
        ({"enabled": True, "secret": "s", "algorithm": "HS256", "issuers": "x"}, "issuers"),
    ],
)
def test_jwt_config_refusals(generated: Path, jwt_config: dict[str, object], expected: str) -> None:
    message = refusal(write_config(generated, jwt_config=jwt_config))
    assert "jwt_config" in message and expected in message


def test_jwt_disabled_section_is_accepted(generated: Path) -> None:
    config = load_config(write_config(generated, jwt_config={"enabled": False}))
    assert not config.jwt_config.enabled
