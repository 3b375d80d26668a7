"""Without `enable_metrics` nothing serves the metrics, on either engine."""

from __future__ import annotations

from tests.integration.client import request
from tests.integration.conftest import module_database, module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG

__all__ = ["module_database"]

server = module_server(**REGISTRATION_CONFIG)


def test_the_metrics_paths_are_unknown_when_metrics_are_off(server: RunningServer) -> None:
    for path in ("/_synapse/metrics", "/metrics"):
        reply = request("GET", server.url + path)
        assert reply.status == 404
        assert reply.errcode == "M_UNRECOGNIZED"
