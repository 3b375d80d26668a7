"""homeserver.yaml loading: defaults, generation, and every start-up refusal by its message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ranvier.config import ConfigError, load_config
from ranvier.config.generate import generate_config
from ranvier.config.signing_key import load_signing_key
from ranvier.config.units import parse_duration_ms, parse_size
from tests.config.files import REMOVED, refusal, write_config


def test_generated_config_loads_with_expected_values(generated: Path) -> None:
    config = load_config(generated)
    assert config.server_name == "example.org"
    assert config.database.name == "sqlite3"
    assert config.database.args["database"] == str(generated.parent / "data" / "homeserver.db")
    assert config.listeners[0].port == 8008
    assert config.listeners[0].bind_addresses == ["127.0.0.1"]
    assert config.enable_registration is False
    assert config.allow_public_rooms_without_auth is False
    assert config.default_room_version == "12"
    assert config.max_upload_size == 50 * 1024 * 1024
    assert config.caches.cache_entry_ttl == 30 * 60 * 1000
    assert config.registration_shared_secret


def test_generated_config_is_commented(generated: Path) -> None:
    text = generated.read_text()
    assert text.count("\n#") > 10
    for key in (
        "server_name",
        "public_baseurl",
        "listeners",
        "database",
        "signing_key_path",
        "registration_shared_secret",
        "enable_registration",
        "enable_registration_without_verification",
        "log_config",
        "media_store_path",
        "max_upload_size",
        "event_cache_size",
        "caches",
        "global_factor",
        "expire_caches",
        "cache_entry_ttl",
        "default_room_version",
        "allow_public_rooms_without_auth",
    ):
        assert key in text


def test_signing_key_is_in_synapse_format(generated: Path) -> None:
    config = load_config(generated)
    algorithm, version, seed = Path(config.signing_key_path).read_text().split()
    assert algorithm == "ed25519"
    assert version.startswith("a_")
    assert len(seed) == 43  # 32 bytes, unpadded base64
    key = load_signing_key(config.signing_key_path)
    assert key.key_id == f"ed25519:{version}"


def test_generate_refuses_to_overwrite(generated: Path) -> None:
    before = generated.read_text()
    with pytest.raises(FileExistsError):
        generate_config("other.org", generated)
    assert generated.read_text() == before


def test_unknown_key_names_key_file_and_fix(generated: Path) -> None:
    message = refusal(write_config(generated, enable_registraton=True))
    assert "enable_registraton: unknown option" in message
    assert "did you mean 'enable_registration'?" in message


def test_unknown_nested_key_is_named_with_its_path(generated: Path) -> None:
    message = refusal(write_config(generated, caches={"global_factr": 1.0}))
    assert "caches.global_factr: unknown option" in message
    assert "did you mean 'global_factor'?" in message


def test_mistyped_value_is_named(generated: Path) -> None:
    message = refusal(write_config(generated, enable_registration="sometimes"))
    assert "enable_registration:" in message
    assert "'sometimes'" in message


def test_missing_required_key(generated: Path) -> None:
    message = refusal(write_config(generated, server_name=REMOVED))
    assert "server_name: required option is missing" in message


def test_unknown_room_version_refused(generated: Path) -> None:
    message = refusal(write_config(generated, default_room_version="99"))
    assert "default_room_version: room version '99' is unknown" in message


def test_log_file_is_refused_with_log_config_fix(generated: Path) -> None:
    message = refusal(write_config(generated, log_file="/var/log/ranvier.log"))
    assert "'log_file' was removed" in message
    assert "log_config" in message


def test_webclient_listener_refused(generated: Path) -> None:
    message = refusal(write_config(generated, listeners=[{"port": 8080, "type": "webclient"}]))
    assert "listeners[0].type: listeners of type 'webclient' are no longer supported" in message
    assert "web_client_location" in message


@pytest.mark.parametrize("location", ["ftp://client.example.org", "/static/client", "client"])
def test_non_http_web_client_location_refused(generated: Path, location: str) -> None:
    message = refusal(write_config(generated, web_client_location=location))
    assert "web_client_location:" in message
    assert "is not an HTTP(S) URL" in message


def test_http_web_client_location_accepted(generated: Path) -> None:
    write_config(generated, web_client_location="https://app.element.io/")
    assert load_config(generated).web_client_location == "https://app.element.io/"


def test_open_registration_without_verification_refused(generated: Path) -> None:
    message = refusal(write_config(generated, enable_registration=True))
    assert "enable_registration: open registration without verification" in message
    assert "registration_requires_token: true" in message
    assert "enable_registration_without_verification: true" in message


@pytest.mark.parametrize(
    "extra",
    [
        {"enable_registration_without_verification": True},
        {"registration_requires_token": True},
    ],
)
def test_open_registration_allowed_with_verification_or_opt_out(
    generated: Path, extra: dict[str, object]
) -> None:
    write_config(generated, enable_registration=True, **extra)
    assert load_config(generated).enable_registration is True


def test_email_threepid_delegate_refused(generated: Path) -> None:
    message = refusal(
        write_config(generated, account_threepid_delegates={"email": "https://id.example.org"})
    )
    assert "account_threepid_delegates.email:" in message
    assert "no longer supported" in message


def test_msisdn_threepid_delegate_refused_until_phone_numbers_are_verified(
    generated: Path,
) -> None:
    message = refusal(
        write_config(generated, account_threepid_delegates={"msisdn": "https://id.example.org"})
    )
    assert "account_threepid_delegates.msisdn: verifying phone numbers is not supported" in message


def test_structured_log_config_refused(generated: Path) -> None:
    config = load_config(generated)
    assert config.log_config is not None
    log_config = Path(config.log_config)
    log_config.write_text(yaml.safe_dump({"structured": True, "drains": {}}))
    message = refusal(generated)
    assert "sets 'structured: true', which was removed" in message


def test_missing_log_config_refused(generated: Path) -> None:
    message = refusal(write_config(generated, log_config="nowhere.yaml"))
    assert "log_config:" in message and "does not exist" in message


def test_several_problems_reported_together(generated: Path) -> None:
    message = refusal(write_config(generated, log_file="x", report_stat=True))
    assert "2 problem(s)" in message


def test_not_yaml_mapping_refused(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text("- a list\n")
    assert "must be a YAML mapping" in refusal(path)


def test_missing_file_refused(tmp_path: Path) -> None:
    assert "cannot read the configuration file" in refusal(tmp_path / "absent.yaml")


def test_missing_signing_key_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_signing_key(tmp_path / "nope.key")
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"), [("50M", 50 * 1024**2), ("10K", 10240), ("123", 123), (7, 7)]
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("30m", 1_800_000), ("1h", 3_600_000), ("500ms", 500), ("2", 2)]
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize("bad", ["fifty", "5X", "-1M"])
def test_bad_size_refused(generated: Path, bad: str) -> None:
    message = refusal(write_config(generated, max_upload_size=bad))
    assert "max_upload_size:" in message and "is not a size" in message
