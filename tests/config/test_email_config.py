"""The `email` section and the 3PID options: what Synapse's files say takes effect, what
cannot work refuses start-up with the fix."""

from __future__ import annotations

from pathlib import Path

from ranvier.config import load_config
from tests.config.files import refusal, write_config

EMAIL = {"smtp_host": "mail.example.org", "notif_from": "%(app)s server <hs@example.org>"}


def test_an_email_section_from_synapse_loads_with_synapse_defaults(generated: Path) -> None:
    config = load_config(write_config(generated, email={**EMAIL, "app_name": "Acme"}))
    assert config.email is not None
    assert config.email.port == 25
    assert config.email.sender == "Acme server <hs@example.org>"
    assert config.email.validation_token_lifetime == 3600_000
    assert config.email.subjects.password_reset == "[%(server_name)s] Password reset"
    tls = load_config(write_config(generated, email={**EMAIL, "force_tls": True}))
    assert tls.email is not None and tls.email.port == 465


def test_an_empty_email_section_turns_nothing_on(generated: Path) -> None:
    assert load_config(write_config(generated, email={})).email is None


def test_notif_from_is_required_and_must_hold_an_address(generated: Path) -> None:
    message = refusal(write_config(generated, email={"smtp_host": "mail.example.org"}))
    assert "notif_from is required" in message
    message = refusal(write_config(generated, email={**EMAIL, "notif_from": "%(app)s"}))
    assert "holds no email address" in message
    message = refusal(write_config(generated, email={**EMAIL, "notif_from": "%(bad)s <a@b.c>"}))
    assert "may only use %(app)s" in message


def test_tls_options_that_contradict_each_other_are_refused(generated: Path) -> None:
    message = refusal(
        write_config(generated, email={**EMAIL, "force_tls": True, "enable_tls": False})
    )
    assert "force_tls requires enable_tls" in message


def test_a_missing_template_dir_refuses_start_up(generated: Path) -> None:
    message = refusal(write_config(generated, email={**EMAIL, "template_dir": "no_such_dir"}))
    assert "email.template_dir" in message and "no_such_dir" in message
    (generated.parent / "tpl").mkdir()
    config = load_config(write_config(generated, email={**EMAIL, "template_dir": "tpl"}))
    assert config.email is not None
    assert config.email.template_dir == str(generated.parent / "tpl")


def test_phone_numbers_cannot_be_required(generated: Path) -> None:
    message = refusal(
        write_config(generated, email=EMAIL, registrations_require_3pid=["email", "msisdn"])
    )
    assert "registrations_require_3pid" in message and "msisdn" in message


def test_requiring_email_needs_the_email_section(generated: Path) -> None:
    message = refusal(write_config(generated, registrations_require_3pid=["email"]))
    assert "'email' section" in message


def test_requiring_email_is_verification_enough_for_open_registration(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            email=EMAIL,
            enable_registration=True,
            registrations_require_3pid=["email"],
        )
    )
    assert config.registrations_require_3pid == ["email"]


def test_allowed_local_3pids_need_valid_regexes(generated: Path) -> None:
    message = refusal(
        write_config(generated, allowed_local_3pids=[{"medium": "email", "pattern": "(["}])
    )
    assert "is not a valid regex" in message


def test_rc_3pid_validation_keeps_synapse_defaults_for_keys_left_out(generated: Path) -> None:
    config = load_config(write_config(generated, rc_3pid_validation={"per_second": 1}))
    assert config.rc_3pid_validation.per_second == 1
    assert config.rc_3pid_validation.burst_count == 5


def test_a_template_option_naming_a_missing_file_refuses_start_up(generated: Path) -> None:
    (generated.parent / "tpl").mkdir()
    message = refusal(
        write_config(
            generated,
            email={**EMAIL, "template_dir": "tpl", "registration_template_html": "mine.html"},
        )
    )
    assert "email.registration_template_html" in message and "'mine.html'" in message
    (generated.parent / "tpl" / "mine.html").write_text("<p>{{ link }}</p>")
    config = load_config(generated)
    assert config.email is not None
    assert config.email.registration_template_html == "mine.html"
