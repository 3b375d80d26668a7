"""The metrics options at start-up: what asks for metrics is refused while they are off,
what Ranvier does not offer is refused by name, and the removed legacy switch says what
to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from ranvier.config import load_config
from ranvier.config.generate import generate_config
from tests.config.files import refusal, write_config

METRICS_LISTENER = {"port": 9000, "bind_addresses": ["127.0.0.1"], "type": "metrics"}
CLIENT_LISTENER = {"port": 8008, "resources": [{"names": ["client"]}]}


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    generate_config("example.org", tmp_path / "homeserver.yaml", tmp_path / "data")
    return tmp_path / "homeserver.yaml"


def test_a_metrics_listener_and_resource_start_with_metrics_on(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            enable_metrics=True,
            federation_metrics_domains=["matrix.org"],
            metrics_flags={"known_servers": False},
            listeners=[
                {"port": 8008, "resources": [{"names": ["client", "metrics"]}]},
                METRICS_LISTENER,
            ],
        )
    )
    assert config.enable_metrics
    assert [listener.type for listener in config.listeners] == ["http", "metrics"]
    assert config.federation_metrics_domains == ["matrix.org"]
    assert config.not_used_keys == ()


def test_metrics_off_by_default_and_accepted_switched_off(generated: Path) -> None:
    assert not load_config(generated).enable_metrics
    config = load_config(write_config(generated, enable_metrics=False, metrics_flags={}))
    assert not config.enable_metrics and config.not_used_keys == ()


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        (
            [CLIENT_LISTENER, METRICS_LISTENER],
            "listeners[1]: a metrics listener serves Prometheus metrics, which are off; "
            "set 'enable_metrics: true' or remove this listener",
        ),
        (
            [{"port": 8008, "resources": [{"names": ["client", "metrics"]}]}],
            "listeners[0].resources: 'metrics' serves Prometheus metrics, which are off; "
            "set 'enable_metrics: true' or remove 'metrics' from the names",
        ),
    ],
)
def test_serving_metrics_while_they_are_off_is_refused(
    generated: Path, listeners: list[dict[str, object]], expected: str
) -> None:
    assert expected in refusal(write_config(generated, listeners=listeners))


def test_a_metrics_listener_with_resources_is_refused(generated: Path) -> None:
    listener = {**METRICS_LISTENER, "resources": [{"names": ["client"]}]}
    message = refusal(write_config(generated, enable_metrics=True, listeners=[listener]))
    assert "listeners[0].resources: a metrics listener serves only the metrics" in message


def test_known_servers_flag_is_refused_by_name(generated: Path) -> None:
    message = refusal(
        write_config(generated, enable_metrics=True, metrics_flags={"known_servers": True})
    )
    assert "metrics_flags.known_servers" in message
    assert "synapse_federation_known_servers" in message


def test_an_unknown_metrics_flag_is_refused(generated: Path) -> None:
    message = refusal(write_config(generated, enable_metrics=True, metrics_flags={"nope": 1}))
    assert "metrics_flags.nope" in message


def test_federation_metrics_domains_without_metrics_is_refused(generated: Path) -> None:
    message = refusal(write_config(generated, federation_metrics_domains=["matrix.org"]))
    assert "federation_metrics_domains: labels metrics, which are off" in message


@pytest.mark.parametrize("value", [True, False])
def test_enable_legacy_metrics_is_refused_as_removed(generated: Path, value: bool) -> None:
    message = refusal(write_config(generated, enable_metrics=True, enable_legacy_metrics=value))
    assert "'enable_legacy_metrics' was removed" in message
    assert "docs/metrics.md" in message
