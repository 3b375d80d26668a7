"""A listener with `tls: true` serves HTTPS with the configured certificate, and SIGHUP
loads the certificate files again for new connections (keeping the old certificate when the
new files are bad). TLS does not depend on the database engine: SQLite only."""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    federating,
    https_request,
    served_certificate,
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> FederationCA:
    return FederationCA(tmp_path_factory.mktemp("ca"))


def sqlite(directory: Path) -> dict[str, Any]:
    return {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, ca: FederationCA
) -> Iterator[FederatingServer]:
    directory = tmp_path_factory.mktemp("hs")
    with federating(directory, sqlite(directory), ca) as running:
        yield running


def der(certificate_path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certificate_path.read_text())


def test_client_api_over_https_verified_by_the_ca(server: FederatingServer) -> None:
    reply = https_request(
        server.ca, "GET", f"https://localhost:{server.port}/_matrix/client/versions"
    )
    assert reply.status == 200
    assert "v1.11" in reply.json()["versions"]
    # the same port serves federation too
    version = server.request("GET", "/_matrix/federation/v1/version")
    assert version.status == 200, version.body


def test_the_served_certificate_is_the_configured_one(server: FederatingServer) -> None:
    assert served_certificate(server.ca, server.port) == der(server.certificate_path)
    # verified by IP address too: the certificate names 127.0.0.1
    assert served_certificate(server.ca, server.port, "127.0.0.1") == der(server.certificate_path)


def test_a_client_that_does_not_trust_the_ca_is_refused(server: FederatingServer) -> None:
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(server.url + "/_matrix/client/versions", timeout=5)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_plain_http_gets_no_answer(server: FederatingServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            connection.request("GET", "/_matrix/client/versions")
            connection.getresponse()
    finally:
        connection.close()
    # and the listener still serves HTTPS afterwards
    assert server.request("GET", "/_matrix/client/versions").status == 200


def test_tls_below_1_2_is_refused(server: FederatingServer) -> None:
    # a client that offers only TLS 1.0 and 1.1 (allowed at security level 0, so that the
    # refusal is the server's: its protocol_version alert)
    context = server.ca.client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as info,
    ):
        context.wrap_socket(raw, server_hostname="localhost")
    # the server ended the handshake (with an alert, or, under uvloop, by closing), where a
    # client unable to offer these versions would fail with NO_PROTOCOLS_AVAILABLE
    assert info.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING")
    # the same client allowed TLS 1.2 gets through
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with urllib.request.urlopen(server.url + "/health", timeout=5, context=context) as response:
        assert response.status == 200


def wait_for_log(server: FederatingServer, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged:\n{server.log()[-4000:]}")


def test_sighup_serves_new_certificate_files_and_keeps_the_old_on_bad_ones(
    tmp_path: Path, ca: FederationCA
) -> None:
    with federating(tmp_path, sqlite(tmp_path), ca) as server:
        first = der(server.certificate_path)
        assert served_certificate(ca, server.port) == first

        # the admin renews the certificate in place and signals the server
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        new_certificate, new_key = ca.issue_files(renewed, "localhost", "127.0.0.1")
        server.certificate_path.write_bytes(new_certificate.read_bytes())
        server.private_key_path.write_bytes(new_key.read_bytes())
        second = der(server.certificate_path)
        assert second != first
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, f"reloaded the TLS certificate from {server.certificate_path}")
        assert served_certificate(ca, server.port) == second
        assert server.request("GET", "/_matrix/client/versions").status == 200

        # a key that does not match: logged as an error, the renewed certificate stays
        other = tmp_path / "other"
        other.mkdir()
        server.private_key_path.write_bytes(ca.issue_files(other, "localhost")[1].read_bytes())
        server.process.send_signal(signal.SIGHUP)
        log = wait_for_log(server, "kept serving the old TLS certificate")
        line = next(line for line in log.splitlines() if "kept serving the old" in line)
        assert "ERROR" in line and "does not belong to the certificate" in line
        assert served_certificate(ca, server.port) == second

        # an unreadable certificate file: the same
        server.certificate_path.unlink()
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, "tls_certificate_path: cannot read")
        assert served_certificate(ca, server.port) == second
        assert server.request("GET", "/_matrix/client/versions").status == 200
