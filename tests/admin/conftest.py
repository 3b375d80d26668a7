"""One homeserver per test module, on each engine, with server notices configured and an
admin to drive it; helpers for the admin API's paths and for running synadm against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.integration.client import Reply, request
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, make_admin

__all__ = ["module_database"]

ADMIN = "/_synapse/admin"
HS = "test.localhost"
NOTICES = {
    "system_mxid_localpart": "notices",
    "system_mxid_display_name": "Server Notices",
    "system_mxid_avatar_url": "mxc://test.localhost/notices-avatar",
    "room_name": "Notices from the admins",
    "room_topic": "What the server tells you",
}


def uid(localpart: str) -> str:
    return f"@{localpart}:{HS}"


def q(value: str) -> str:
    return quote(value, safe="")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    with serving(
        tmp_path_factory.mktemp("hs"),
        module_database,
        **REGISTRATION_CONFIG,
        server_notices=NOTICES,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


def call(
    server: RunningServer, who: Session | None, method: str, path: str, body: Any = None
) -> Reply:
    if who is None:
        return request(method, server.url + path, body)
    return authed(who, method, server.url + path, body)


class Synadm:
    """synadm, the command-line tool admins use, configured for `server` as `admin`."""

    def __init__(self, config_file: Path) -> None:
        self._config_file = config_file

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [
            str(Path(sys.executable).with_name("synadm")),
            "-c",
            str(self._config_file),
            "--batch",
            "-o",
            "json",
            *args,
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": "/tmp"}
        )
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        done = self.run(*args)
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def synadm(
    server: RunningServer, admin: Session, tmp_path_factory: pytest.TempPathFactory
) -> Synadm:
    config_file = tmp_path_factory.mktemp("synadm") / "synadm.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "user": admin.user_id,
                "token": admin.access_token,
                "protocol": "http",
                "base_url": server.url,
                "admin_path": ADMIN,
                "matrix_path": "/_matrix",
                "format": "json",
                "timeout": 30,
                "server_discovery": "well-known",
                "homeserver": HS,
                "ssl_verify": False,
            }
        )
    )
    return Synadm(config_file)
