"""The options of the outbound transaction queue: send_federation, the long retries of
transactions, and federation_sender_instances (workers are not supported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ranvier.config.loader import load_config
from tests.config.files import refusal, write_config


def test_defaults_are_synapses(generated: Path) -> None:
    config = load_config(generated)
    assert config.send_federation is True
    assert config.federation.max_long_retries == 10
    assert config.federation.max_long_retry_delay == 60_000
    assert "send_federation" not in config.not_used_keys


def test_long_retries_and_send_federation_are_read(generated: Path) -> None:
    write_config(
        generated,
        send_federation=False,
        federation={"max_long_retries": 2, "max_long_retry_delay": "10s"},
    )
    config = load_config(generated)
    assert config.send_federation is False
    assert (config.federation.max_long_retries, config.federation.max_long_retry_delay) == (
        2,
        10_000,
    )


@pytest.mark.parametrize("value", [None, ["master"], ["federation_sender1"]])
def test_one_sender_instance_is_this_process(generated: Path, value: object) -> None:
    write_config(generated, federation_sender_instances=value)
    load_config(generated)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], "set send_federation: false instead"),
        (["sender1", "sender2"], "federation senders other than this process"),
    ],
)
def test_other_sender_instances_are_refused(generated: Path, value: object, expected: str) -> None:
    write_config(generated, federation_sender_instances=value)
    message = " ".join(refusal(generated).split())
    assert "federation_sender_instances" in message
    assert expected in message
