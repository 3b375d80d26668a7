"""A real Synapse (from PyPI, in bench/synapse-venv) as a federation peer: SQLite, server
name `localhost:<port>`, HTTPS on 127.0.0.1 with a certificate from the test CA, trusting
that CA and allowed to reach loopback. Test modules take the module-scoped `synapse`
fixture (one Synapse per module that asks for it) and make users with `register_on_synapse`.

Installing Synapse needs PyPI: without it the tests are skipped, except under CI=true.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.federation.harness import FederationCA, https_request, wait_for_https
from tests.integration.client import Reply
from tests.integration.homeserver import free_port
from tests.integration.matrix import DEFAULT_PASSWORD, Session

STARTUP_TIMEOUT = 120.0

_GENEROUS = {"per_second": 1000, "burst_count": 1000}
# Synapse's limits out of the tests' way, federation's included
SYNAPSE_RATELIMITS: dict[str, Any] = {
    "rc_message": _GENEROUS,
    "rc_registration": _GENEROUS,
    "rc_login": {"address": _GENEROUS, "account": _GENEROUS, "failed_attempts": _GENEROUS},
    "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
    "rc_joins_per_room": _GENEROUS,
    "rc_invites": {"per_room": _GENEROUS, "per_user": _GENEROUS, "per_issuer": _GENEROUS},
    "rc_room_creation": _GENEROUS,
    "rc_presence": {"per_user": _GENEROUS},
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 1000,
        "sleep_delay": 0,
        "reject_limit": 1000,
        "concurrent": 100,
    },
}


@dataclass
class SynapsePeer:
    server_name: str
    url: str
    port: int
    directory: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    registration_shared_secret: str
    ca: FederationCA

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return https_request(self.ca, method, self.url + path, body, headers)

    def authed(
        self, session: Session, method: str, path: str, body: dict[str, Any] | None = None
    ) -> Reply:
        return self.request(method, path, body, session.headers)

    def log(self) -> str:
        """Synapse's own log (homeserver.log), then what it printed."""
        parts = [self.directory / "homeserver.log", self.log_path]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout)


def synapse_python() -> Path:
    """bench/synapse-venv's python, installing Synapse there first if needed."""
    from bench.servers import synapse_python
    from bench.synapse_setup import ensure_synapse

    try:
        ensure_synapse()
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = f"cannot install matrix-synapse into bench/synapse-venv: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true, so Synapse federation tests must run)")
        pytest.skip(reason)
    return synapse_python()


def start_synapse_peer(
    python: Path, directory: Path, ca: FederationCA, **overrides: Any
) -> SynapsePeer:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_name = f"localhost:{port}"
    config_path = directory / "homeserver.yaml"
    # Synapse writes its signing key, log config and secrets beside the config
    subprocess.run(
        [
            str(python),
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            server_name,
            "--config-path",
            str(config_path),
            "--data-directory",
            str(directory),
            "--generate-config",
            "--report-stats=no",
        ],
        check=True,
        capture_output=True,
        cwd=directory,
    )
    certificate_path, key_path = ca.issue_files(directory, "localhost", "127.0.0.1")
    raw = yaml.safe_load(config_path.read_text())
    raw["database"] = {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}
    raw["listeners"] = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": True,
            "x_forwarded": False,
            "resources": [{"names": ["client", "federation"], "compress": False}],
        }
    ]
    raw.update(
        {
            "public_baseurl": f"https://localhost:{port}/",
            "tls_certificate_path": str(certificate_path),
            "tls_private_key_path": str(key_path),
            "federation_custom_ca_list": [str(ca.pem_path)],
            # the test servers all live on loopback, which Synapse refuses by default
            "ip_range_blacklist": [],
            "ip_range_whitelist": ["127.0.0.0/8"],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "enable_metrics": False,
            "url_preview_enabled": False,
            **SYNAPSE_RATELIMITS,
            **overrides,
        }
    )
    config_path.write_text(yaml.safe_dump(raw))
    log_path = directory / "synapse-output.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(python), "-m", "synapse.app.homeserver", "-c", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    url = f"https://localhost:{port}"
    wait_for_https(url + "/health", ca, process, log_path, STARTUP_TIMEOUT)
    return SynapsePeer(
        server_name=server_name,
        url=url,
        port=port,
        directory=directory,
        config_path=config_path,
        process=process,
        log_path=log_path,
        registration_shared_secret=raw["registration_shared_secret"],
        ca=ca,
    )


@pytest.fixture(scope="module")
def synapse(
    tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA
) -> Iterator[SynapsePeer]:
    """One Synapse for the test module; it must stop cleanly."""
    peer = start_synapse_peer(synapse_python(), tmp_path_factory.mktemp("synapse"), test_ca)
    try:
        yield peer
    finally:
        assert peer.stop() == 0, peer.log()[-6000:]


def register_on_synapse(
    peer: SynapsePeer, localpart: str, password: str = DEFAULT_PASSWORD, *, admin: bool = False
) -> Session:
    """A user on the Synapse peer, registered with its shared secret (the admin API's
    /_synapse/admin/v1/register: a nonce, then an HMAC-SHA1 over the registration)."""
    path = "/_synapse/admin/v1/register"
    nonce_reply = peer.request("GET", path)
    assert nonce_reply.status == 200, nonce_reply.body
    nonce = nonce_reply.json()["nonce"]
    signed = b"\x00".join(
        [nonce.encode(), localpart.encode(), password.encode(), b"admin" if admin else b"notadmin"]
    )
    mac = hmac.new(peer.registration_shared_secret.encode(), signed, hashlib.sha1).hexdigest()
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": mac,
    }
    reply = peer.request("POST", path, body)
    if reply.status != 200:
        raise AssertionError(f"registering on Synapse failed: {reply.status} {reply.body!r}")
    result = reply.json()
    return Session(result["user_id"], result["access_token"], result["device_id"])
