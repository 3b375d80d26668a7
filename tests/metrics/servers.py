"""A server with metrics on, served at /_synapse/metrics beside the client API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config


def metrics_listeners(port: int, *more: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "resources": [{"names": ["client", "federation", "metrics"]}],
        },
        *more,
    ]


@contextmanager
def serving_metrics(
    directory: Path, database: dict[str, Any], *more_listeners: dict[str, Any], **overrides: Any
) -> Iterator[RunningServer]:
    port = free_port()
    path = write_test_config(
        directory,
        database,
        port,
        enable_metrics=True,
        listeners=metrics_listeners(port, *more_listeners),
        **overrides,
    )
    running = start_server(path, port)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()
