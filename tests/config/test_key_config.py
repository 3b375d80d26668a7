"""Server key options: key_refresh_interval, old_signing_keys, trusted_key_servers and the
start-up warning about matrix.org (suppress_key_server_warning), as Synapse reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ranvier.config import load_config
from ranvier.config.validation import key_server_warning
from ranvier.protocol.signing_keys import ServerSigningKey
from tests.config.files import REMOVED, refusal, write_config

KEY = ServerSigningKey.from_seed(b"\x05" * 32, "abc")


def test_generated_config_names_matrix_org_as_key_server(generated: Path) -> None:
    raw = yaml.safe_load(generated.read_text())
    assert raw["trusted_key_servers"] == [{"server_name": "matrix.org"}]
    assert "Synapse's default" in generated.read_text()
    config = load_config(generated)
    assert config.key_refresh_interval == 86_400_000
    assert config.old_signing_keys == {}
    # as Synapse: matrix.org named explicitly still warns, until suppressed
    warning = key_server_warning(config)
    assert warning is not None and "suppress_key_server_warning" in warning
    suppressed = load_config(write_config(generated, suppress_key_server_warning=True))
    assert key_server_warning(suppressed) is None


def test_left_out_key_servers_default_to_matrix_org_with_a_warning(generated: Path) -> None:
    config = load_config(
        write_config(generated, trusted_key_servers=REMOVED, suppress_key_server_warning=True)
    )
    assert [server.server_name for server in config.trusted_key_servers] == ["matrix.org"]
    # Synapse gives this one whatever suppress_key_server_warning says
    warning = key_server_warning(config)
    assert warning is not None and "No trusted_key_servers" in warning


def test_other_key_servers_do_not_warn(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            trusted_key_servers=[
                {
                    "server_name": "notary.example",
                    "verify_keys": {KEY.key_id: KEY.verify_key_base64},
                },
                {"server_name": "other.example", "accept_keys_insecurely": True},
            ],
        )
    )
    assert key_server_warning(config) is None
    first, second = config.trusted_key_servers
    assert first.verify_keys == {KEY.key_id: KEY.verify_key_base64}
    assert second.verify_keys is None and second.accept_keys_insecurely
    assert key_server_warning(load_config(write_config(generated, trusted_key_servers=[]))) is None


def test_key_options_are_read(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            key_refresh_interval="2h",
            old_signing_keys={KEY.key_id: {"key": KEY.verify_key_base64, "expired_ts": 1000}},
        )
    )
    assert config.key_refresh_interval == 7_200_000
    assert config.old_signing_keys[KEY.key_id].expired_ts == 1000
    # `old_signing_keys:` with nothing after it, as Synapse reads it
    assert load_config(write_config(generated, old_signing_keys=None)).old_signing_keys == {}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"key_refresh_interval": "0s"}, "key_refresh_interval"),
        ({"key_refresh_interval": "soon"}, "key_refresh_interval"),
        (
            {"old_signing_keys": {"rsa:abc": {"key": KEY.verify_key_base64, "expired_ts": 1}}},
            "'rsa:abc': key IDs look like 'ed25519:<version>'",
        ),
        (
            {"old_signing_keys": {KEY.key_id: {"key": "AAAA", "expired_ts": 1}}},
            "is not an unpadded base64 ed25519 public key",
        ),
        (
            {"old_signing_keys": {KEY.key_id: {"key": KEY.verify_key_base64}}},
            "expired_ts",
        ),
        (
            {"old_signing_keys": {KEY.key_id: {"key": KEY.verify_key_base64, "expired_ts": -1}}},
            "expired_ts",
        ),
        ({"trusted_key_servers": [{"verify_keys": {}}]}, "server_name"),
        ({"trusted_key_servers": {"server_name": "matrix.org"}}, "trusted_key_servers"),
        (
            {"trusted_key_servers": [{"server_name": "n.example", "verify_keys": {}}]},
            "an empty verify_keys would refuse every answer",
        ),
        (
            {
                "trusted_key_servers": [
                    {"server_name": "n.example", "verify_keys": {"ed25519": "x"}}
                ]
            },
            "key IDs look like 'ed25519:<version>'",
        ),
        (
            {
                "trusted_key_servers": [
                    {"server_name": "n.example", "verify_keys": {KEY.key_id: "not base64!"}}
                ]
            },
            "is not an unpadded base64 ed25519 public key",
        ),
        (
            {
                "trusted_key_servers": [
                    {"server_name": "n.example", "accept_keys_insecurely": "perhaps"}
                ]
            },
            "accept_keys_insecurely",
        ),
    ],
)
def test_bad_key_options_are_refused(
    generated: Path, changes: dict[str, object], expected: str
) -> None:
    message = refusal(write_config(generated, **changes))
    assert expected in message, message


@pytest.mark.parametrize(
    ("server", "refused"),
    [
        ({"server_name": "n.example"}, "would be taken with no signature and no TLS check"),
        (
            {"server_name": "matrix.org", "verify_keys": {"ed25519:auto": KEY.verify_key_base64}},
            "old, possibly compromised key 'ed25519:auto'",
        ),
        ({"server_name": "n.example", "accept_keys_insecurely": True}, None),
        ({"server_name": "n.example", "verify_keys": {KEY.key_id: KEY.verify_key_base64}}, None),
    ],
)
def test_key_servers_without_certificate_checks_need_keys(
    generated: Path, server: dict[str, object], refused: str | None
) -> None:
    changes = {"federation_verify_certificates": False, "trusted_key_servers": [server]}
    if refused is None:
        load_config(write_config(generated, **changes))
        return
    message = refusal(write_config(generated, **changes))
    assert "trusted_key_servers[0]" in message and refused in message, message
    # with certificates checked, the same key server is accepted, as in Synapse
    load_config(write_config(generated, federation_verify_certificates=True))
