"""The options of TURN, login_via_existing_session and well_known_support: accepted as
written, and refused at start-up, with the fix, where they would give clients nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ranvier.config import load_config
from ranvier.services.turn import turn_server
from tests.config.files import refusal, write_config


def test_turn_secret_from_a_file(generated: Path) -> None:
    secret_file = generated.parent / "turn_secret"
    secret_file.write_text("from a file\n")
    config = load_config(
        write_config(
            generated,
            turn_uris=["turn:turn.example.org"],
            turn_shared_secret_path="turn_secret",
            turn_user_lifetime="30m",
        )
    )
    assert config.turn_shared_secret == "from a file"
    assert config.turn_user_lifetime == 30 * 60 * 1000
    assert config.not_used_keys == ()


def test_static_turn_credentials(generated: Path) -> None:
    config = load_config(
        write_config(
            generated, turn_uris=["turn:t.example.org"], turn_username="u", turn_password="p"
        )
    )
    assert turn_server(config, "@a:example.org", 0) == {
        "username": "u",
        "password": "p",
        "ttl": 3600,
        "uris": ["turn:t.example.org"],
    }


def test_no_turn_server_answers_nothing(generated: Path) -> None:
    assert turn_server(load_config(generated), "@a:example.org", 0) == {}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"turn_shared_secret": "s"}, "turn_uris: TURN credentials are set but no TURN server"),
        ({"turn_uris": ["turn:t"]}, "turn_uris: TURN servers need credentials"),
        (
            {"turn_uris": ["turn:t"], "turn_shared_secret": "s", "turn_username": "u"},
            "set either turn_shared_secret",
        ),
        ({"turn_uris": ["turn:t"], "turn_username": "u"}, "static TURN credentials need both"),
        (
            {"turn_uris": ["turn:t"], "turn_shared_secret": "s", "turn_user_lifetime": 10},
            "turn_user_lifetime: must be at least one second",
        ),
    ],
)
def test_turn_options_that_give_nothing_are_refused(
    generated: Path, keys: dict[str, object], expected: str
) -> None:
    assert expected in refusal(write_config(generated, **keys))


def test_login_via_existing_session(generated: Path) -> None:
    config = load_config(
        write_config(generated, login_via_existing_session={"enabled": True, "token_timeout": "1m"})
    )
    assert config.login_via_existing_session.enabled
    assert config.login_via_existing_session.require_ui_auth
    assert config.login_via_existing_session.token_timeout == 60_000
    assert "login_via_existing_session.typo" in refusal(
        write_config(generated, login_via_existing_session={"typo": True})
    )


def test_well_known_support_accepts_the_specs_shapes(generated: Path) -> None:
    support = {
        "contacts": [
            {"role": "m.role.admin", "matrix_id": "@admin:example.org"},
            {"role": "org.example.moderator", "email_address": "mods@example.org"},
        ]
    }
    config = load_config(write_config(generated, well_known_support=support))
    assert config.well_known_support is not None
    assert len(config.well_known_support.contacts) == 2


@pytest.mark.parametrize(
    ("support", "expected"),
    [
        ({}, "give at least one contact or a support_page"),
        ({"contacts": [{"role": "m.role.admin"}]}, "needs a matrix_id or an email_address"),
        (
            {"contacts": [{"role": "m.role.owner", "matrix_id": "@a:example.org"}]},
            "is not a role",
        ),
        (
            {"contacts": [{"role": "admin", "matrix_id": "@a:example.org"}]},
            "is not a role",
        ),
        (
            {"contacts": [{"role": "m.role.admin", "matrix_id": "admin"}]},
            "is not a Matrix user ID",
        ),
        ({"support_page": "ftp://example.org/"}, "is not an http(s) URL"),
    ],
)
def test_well_known_support_refusals(
    generated: Path, support: dict[str, object], expected: str
) -> None:
    assert expected in refusal(write_config(generated, well_known_support=support))
