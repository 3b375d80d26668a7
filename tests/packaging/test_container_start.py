"""contrib/docker/start.sh, the image's entrypoint, run here without Docker: on a first
start it generates /data's configuration for SERVER_NAME with the listener open to the
container's network, then replaces itself with `ranvier run`; without SERVER_NAME or a
config it says what to do. (`ranvier run` itself is stood in for by a script that records
how it was called: the real one would listen on every address of this machine.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ranvier.config import load_config

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "contrib" / "docker" / "start.sh"


def fake_ranvier(directory: Path) -> Path:
    """A `ranvier` that does everything for real except `run`, which it records."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "ranvier"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = run ]; then echo "$@" > "$RECORD"; exit 0; fi\n'
        f'exec {sys.executable} -m ranvier.cli "$@"\n'
    )
    script.chmod(0o755)
    return bin_dir


def start(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PATH": f"{fake_ranvier(directory)}:{os.environ['PATH']}",
        "RECORD": str(directory / "run-args"),
        "RANVIER_CONFIG_PATH": str(directory / "data" / "homeserver.yaml"),
        **env,
    }
    if "SERVER_NAME" not in env:
        environment.pop("SERVER_NAME", None)
    (directory / "data").mkdir(exist_ok=True)
    return subprocess.run(
        ["sh", str(START)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=ROOT,
    )


def test_first_start_generates_a_config_reachable_from_outside(tmp_path: Path) -> None:
    result = start(tmp_path, SERVER_NAME="docker.test")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "data" / "homeserver.yaml"
    raw = yaml.safe_load(config.read_text())
    assert raw["server_name"] == "docker.test"
    assert raw["listeners"][0]["bind_addresses"] == ["0.0.0.0"]
    assert raw["listeners"][0]["port"] == 8008
    assert (tmp_path / "data" / "docker.test.signing.key").exists()
    # the database, media and pid file go in the /data volume
    loaded = load_config(config)
    data = str(tmp_path / "data")
    assert loaded.database.args["database"].startswith(data)
    assert loaded.media_store_path.startswith(data)
    run_args = (tmp_path / "run-args").read_text().splitlines()
    assert run_args[0] == f"run -c {config}"

    # a later start leaves the (perhaps edited) config alone
    config.write_text(
        config.read_text().replace("server_name: docker.test", "server_name: edited.test")
    )
    again = start(tmp_path, SERVER_NAME="docker.test")
    assert again.returncode == 0, again.stderr
    assert "Generated" not in again.stdout
    assert yaml.safe_load(config.read_text())["server_name"] == "edited.test"


def test_without_server_name_or_config_it_says_what_to_do(tmp_path: Path) -> None:
    result = start(tmp_path)
    assert result.returncode == 1
    assert "Set SERVER_NAME" in result.stderr
    assert not (tmp_path / "data" / "homeserver.yaml").exists()
    assert not (tmp_path / "run-args").exists()
