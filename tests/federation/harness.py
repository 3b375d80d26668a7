"""Federating Ranvier servers for tests: HTTPS on a loopback port, a certificate from the
session's test CA, server name `localhost:<port>`, trusting that CA for outbound requests.

Python callers reach a server with `server.request(...)` (urllib, verified against the CA),
or with an aiohttp session from `https_session(ca)`; `register` makes a user on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import trustme

from tests.integration.client import Reply
from tests.integration.homeserver import RunningServer, free_port, write_test_config
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, REGISTRATION_CONFIG, Session

STARTUP_TIMEOUT = 30.0

# merged into every federating server's config (before the test's own overrides); the CA
# is added per server: `federation_custom_ca_list: [<ca.pem_path>]`
FEDERATION_TEST_CONFIG: dict[str, Any] = {
    # no notary: keys come from the servers themselves (matrix.org is out of reach anyway)
    "trusted_key_servers": [],
    # the other test servers are on loopback, which outbound federation refuses by default
    "ip_range_whitelist": ["127.0.0.1"],
}


class FederationCA(trustme.CA):
    """A trustme CA whose certificate is also a PEM file (`pem_path`), for the servers'
    `federation_custom_ca_list`."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.pem_path = directory / "ca.pem"
        self.cert_pem.write_to_path(str(self.pem_path))

    def issue_files(self, directory: Path, *identities: str) -> tuple[Path, Path]:
        """A certificate for `identities` (host names or IP addresses) and its key, as the
        PEM files a server's `tls_certificate_path` and `tls_private_key_path` name (the
        certificate file holds the chain)."""
        issued = self.issue_cert(*identities)
        certificate_path = directory / "tls.crt"
        key_path = directory / "tls.key"
        certificate_path.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        key_path.write_bytes(issued.private_key_pem.bytes())
        return certificate_path, key_path

    def client_context(self) -> ssl.SSLContext:
        """A client SSLContext that trusts this CA only, checking host names."""
        return ssl.create_default_context(cafile=str(self.pem_path))


def served_certificate(ca: FederationCA, port: int, server_hostname: str = "localhost") -> bytes:
    """The certificate (DER) a new TLS connection to 127.0.0.1:`port` is shown, verified
    against the test CA for `server_hostname`."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ca.client_context().wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def https_session(ca: FederationCA) -> aiohttp.ClientSession:
    """An aiohttp session that verifies servers against the test CA (use `async with`)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ca.client_context()))


def https_request(
    ca: FederationCA,
    method: str,
    url: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request over HTTPS verified against the test CA; any status is returned."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ca.client_context()) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


@dataclass
class FederatingServer(RunningServer):
    """A Ranvier process serving client and federation APIs over HTTPS on `port`."""

    server_name: str
    port: int
    ca: FederationCA
    certificate_path: Path
    private_key_path: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`path` (such as "/_matrix/federation/v1/version") on this server."""
        return https_request(self.ca, method, self.url + path, body, headers)

    def authed(
        self, session: Session, method: str, path: str, body: dict[str, Any] | None = None
    ) -> Reply:
        """A client request carrying `session`'s access token."""
        return self.request(method, path, body, session.headers)

    def wait_until_serving(self) -> None:
        """Return once /health answers over HTTPS; raise with the log if it never does."""
        try:
            wait_for_https(
                self.url + "/health", self.ca, self.process, self.log_path, STARTUP_TIMEOUT
            )
        except BaseException:
            self.stop()
            raise


def register(server: FederatingServer, localpart: str, password: str = DEFAULT_PASSWORD) -> Session:
    """A user on `server`, registered through /register as a client would (the harness
    opens registration)."""
    body = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"}}
    reply = server.request("POST", CLIENT + "/register", body)
    if reply.status != 200:
        raise AssertionError(
            f"register on {server.server_name} failed: {reply.status} {reply.body!r}"
        )
    result = reply.json()
    return Session(result["user_id"], result["access_token"], result["device_id"])


def wait_for_https(
    url: str, ca: FederationCA, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    """Poll `url` over HTTPS until it answers 200; raise with the log if the process exits
    or the time runs out."""
    context = ca.client_context()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-6000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        time.sleep(0.05)
    process.terminate()
    process.wait(30)
    output = log_path.read_text(errors="replace")[-6000:]
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{output}")


def start_federating_server(
    directory: Path, database: dict[str, Any], ca: FederationCA, **overrides: Any
) -> FederatingServer:
    """A Ranvier on a free port P, as `localhost:P`, serving client and federation over
    HTTPS on 127.0.0.1:P, with open registration, relaxed rate limits,
    FEDERATION_TEST_CONFIG, and `overrides` on top; returned once it answers. Stop it
    with `stop()`."""
    server = launch_federating_server(directory, database, ca, **overrides)
    server.wait_until_serving()
    return server


def launch_federating_server(
    directory: Path,
    database: dict[str, Any],
    ca: FederationCA,
    *,
    extra_listeners: Sequence[dict[str, Any]] = (),
    **overrides: Any,
) -> FederatingServer:
    """`start_federating_server` without the wait, so several start at once; call
    `wait_until_serving()` on each. `extra_listeners` go beside the HTTPS one."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_name = f"localhost:{port}"
    certificate_path, key_path = ca.issue_files(directory, "localhost", "127.0.0.1")
    listener = {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "tls": True,
        "resources": [{"names": ["client", "federation"]}],
    }
    config = {
        **REGISTRATION_CONFIG,
        **FEDERATION_TEST_CONFIG,
        "federation_custom_ca_list": [str(ca.pem_path)],
        "server_name": server_name,
        "listeners": [listener, *extra_listeners],
        "tls_certificate_path": str(certificate_path),
        "tls_private_key_path": str(key_path),
        **overrides,
    }
    config_path = write_test_config(directory, database, port, **config)
    log_path = directory / "server-output.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    return FederatingServer(
        url=f"https://localhost:{port}",
        config_path=config_path,
        process=process,
        log_path=log_path,
        server_name=server_name,
        port=port,
        ca=ca,
        certificate_path=certificate_path,
        private_key_path=key_path,
    )


def restart(server: FederatingServer) -> FederatingServer:
    """`server`, stopped, started again on the same config file (so the same port, keys
    and database); returned once it answers. Its output goes on in the same log."""
    assert server.process.poll() is not None, "stop() the server before restarting it"
    with open(server.log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ranvier.cli", "run", "-c", str(server.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    restarted = dataclasses.replace(server, process=process)
    restarted.wait_until_serving()
    return restarted


@contextmanager
def federating(
    directory: Path, database: dict[str, Any], ca: FederationCA, **overrides: Any
) -> Iterator[FederatingServer]:
    """`start_federating_server` for the length of the block; it must stop cleanly."""
    server = start_federating_server(directory, database, ca, **overrides)
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()
