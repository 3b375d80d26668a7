"""The outbound federation options: Synapse's names and defaults, and their refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from ranvier.config.loader import load_config
from tests.config.files import refusal, write_config


def test_defaults_are_synapses(generated: Path) -> None:
    config = load_config(generated)
    assert config.federation_verify_certificates is True
    assert config.federation_client_minimum_tls_version == "1"
    assert config.federation_certificate_verification_whitelist == []
    assert config.federation_custom_ca_list is None
    assert config.federation_domain_whitelist is None
    assert config.ip_range_blacklist is None  # Synapse's default list applies
    assert config.ip_range_whitelist == []
    settings = config.federation
    assert (settings.client_timeout, settings.max_short_retries) == (60_000, 3)
    assert settings.max_short_retry_delay == 2_000
    assert settings.destination_min_retry_interval == 600_000
    assert settings.destination_retry_multiplier == 2
    assert settings.destination_max_retry_interval == 7 * 24 * 3600 * 1000


def test_synapse_forms_are_read(generated: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    write_config(
        generated,
        federation_client_minimum_tls_version=1.2,
        federation_custom_ca_list=["ca.pem"],
        ip_range_blacklist=["10.0.0.0/8", "fc00::/7"],
        ip_range_whitelist=["10.1.2.3"],
        federation={"client_timeout": "30s", "destination_min_retry_interval": "1m"},
    )
    config = load_config(generated)
    assert config.federation_client_minimum_tls_version == "1.2"
    # relative to the directory holding homeserver.yaml
    assert config.federation_custom_ca_list == [str(generated.parent / "ca.pem")]
    assert config.federation.client_timeout == 30_000
    assert config.federation.destination_min_retry_interval == 60_000


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"federation": {"max_long_retries": -1}}, "max_long_retries"),
        ({"federation": {"max_long_retry_delay": "soon"}}, "max_long_retry_delay"),
        ({"federation": {"max_short_retries": -1}}, "max_short_retries"),
        ({"federation": {"destination_retry_multiplier": 0.5}}, "destination_retry_multiplier"),
        ({"federation_client_minimum_tls_version": "0.9"}, "federation_client_minimum_tls"),
        ({"ip_range_blacklist": ["not-a-range"]}, "'not-a-range' is not an IP address"),
        ({"ip_range_whitelist": ["10.0.0.0/40"]}, "is not an IP address or CIDR range"),
        ({"federation_custom_ca_list": ["missing.pem"]}, "federation_custom_ca_list: cannot read"),
    ],
)
def test_refusals(generated: Path, changes: dict[str, object], expected: str) -> None:
    write_config(generated, **changes)
    assert expected in " ".join(refusal(generated).split())


@pytest.mark.parametrize("content", ["", "not a certificate"])
def test_custom_ca_files_without_certificates_are_refused(generated: Path, content: str) -> None:
    (generated.parent / "bad.pem").write_text(content)
    write_config(generated, federation_custom_ca_list=["bad.pem"])
    assert "holds no usable PEM certificate" in " ".join(refusal(generated).split())
