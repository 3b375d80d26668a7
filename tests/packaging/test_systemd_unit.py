"""contrib/systemd/ranvier.service: systemd accepts it, and it runs what it should, how
it should (the foreground command, SIGHUP to reload, a sandbox)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "ranvier.service"


def unit_sections() -> dict[str, dict[str, list[str]]]:
    """The unit file as systemd reads it: sections of keys, a key given twice keeps both."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(UNIT.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {number} is outside any section: {raw!r}"
        key, equals, value = line.partition("=")
        assert equals, f"line {number} is not KEY=VALUE: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_unit_runs_ranvier_in_the_foreground_as_its_own_user() -> None:
    unit = unit_sections()
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    exec_start = service["ExecStart"][0].split()
    assert exec_start[1:3] == ["run", "-c"], "systemd supervises the foreground command"
    assert exec_start[0].endswith("/ranvier")
    assert service["Type"] == ["exec"]
    assert service["User"] == ["ranvier"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_unit_is_sandboxed() -> None:
    service = unit_sections()["Service"]
    for key, value in {
        "NoNewPrivileges": "true",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "PrivateDevices": "true",
        "RestrictSUIDSGID": "true",
        "CapabilityBoundingSet": "",
        "StateDirectory": "ranvier",
    }.items():
        assert service.get(key) == [value], key
    # ProtectSystem=strict makes everything read only: only the state directory is written
    assert service["WorkingDirectory"] == ["/var/lib/ranvier"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # the parser check above still ran; systemd's own needs systemd
        pytest.skip("systemd-analyze is not installed here, so systemd cannot check the unit")
    # verify insists that ExecStart exists: point it at this environment's ranvier
    installed = Path(sys.executable).parent / "ranvier"
    assert installed.exists(), installed
    text = UNIT.read_text().replace("/opt/ranvier/bin/ranvier", str(installed))
    unit = tmp_path / "ranvier.service"
    unit.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "ranvier.service" not in result.stderr, result.stderr
