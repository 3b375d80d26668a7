"""A homeserver.yaml and log config written by the real Synapse generator start Ranvier.

Synapse comes from PyPI into bench/synapse-venv (gitignored), installed at most once per
test session. Without network or PyPI the test is skipped, except under CI=true, where
it fails: this is the promise that an admin can bring a Synapse config along.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.homeserver import free_port


@pytest.fixture(scope="session")
def synapse_python() -> Path:
    from bench.servers import synapse_python
    from bench.synapse_setup import ensure_synapse

    try:
        ensure_synapse()
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = f"cannot install matrix-synapse into bench/synapse-venv: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true, so this test must run)")
        pytest.skip(reason)
    return synapse_python()


def test_stock_synapse_config_starts_ranvier(synapse_python: Path, tmp_path: Path) -> None:
    # The generator writes every path (database, media store, signing key, log config, log
    # file, pid file) into the directory it runs in, so nothing needs moving.
    subprocess.run(
        [
            str(synapse_python),
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            "example.org",
            "--config-path",
            "homeserver.yaml",
            "--generate-config",
            "--report-stats=no",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    config_path = tmp_path / "homeserver.yaml"
    raw = yaml.safe_load(config_path.read_text())
    assert raw["log_config"] == str(tmp_path / "example.org.log.config")
    # The only change: a free port, and IPv4 loopback only (the stock listener also binds
    # ::1, which a container without IPv6 lacks, and port 8008 may be taken).
    port = free_port()
    raw["listeners"][0]["port"] = port
    raw["listeners"][0]["bind_addresses"] = ["127.0.0.1"]
    config_path.write_text(yaml.safe_dump(raw))

    process = subprocess.Popen(
        [sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        versions = _wait_for_versions(f"http://127.0.0.1:{port}", process)
        assert "v1.11" in versions["versions"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr

    # Synapse's log config (its buffering handler, `%(request)s` in the format) wrote the
    # log file, and named the keys that mean nothing here once
    log = (tmp_path / "homeserver.log").read_text()
    unused = [line for line in log.splitlines() if "Not used by Ranvier:" in line]
    assert len(unused) == 1, log
    # form_secret signs the consent pages' links (user_consent) now
    assert unused[0].endswith("Not used by Ranvier: macaroon_secret_key")
    assert " - WARNING - - - Not used by Ranvier" in unused[0]
    # Synapse's config names matrix.org as its key server: warned about, as Synapse does
    assert "uses matrix.org as a trusted key server" in log
    assert any(" - GET-" in line for line in log.splitlines()), "request IDs in the log"


def _wait_for_versions(base_url: str, process: subprocess.Popen[str]) -> dict[str, list[str]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Ranvier exited at start-up: {process.communicate()[1]}")
        try:
            with urllib.request.urlopen(f"{base_url}/_matrix/client/versions", timeout=2) as r:
                body: dict[str, list[str]] = json.loads(r.read())
                return body
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    pytest.fail("Ranvier did not answer /_matrix/client/versions within 60 s")
