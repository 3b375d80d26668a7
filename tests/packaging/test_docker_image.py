"""The Dockerfile: the image builds, starts on an empty /data volume with SERVER_NAME,
generates its configuration, serves clients on the published port as a non-root user, and
reports itself healthy. Needs a working Docker (client and daemon); skipped otherwise."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.client import request
from tests.integration.matrix import login

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None."""
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except FileNotFoundError:
        return "docker is not installed here"
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 30 s"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"docker is not available here (no Docker daemon to build with: {reason})"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    problem = docker_problem()
    if problem is not None:
        pytest.skip(problem)
    tag = f"ranvier-test:{uuid.uuid4().hex[:12]}"
    built = docker("build", "-t", tag, str(ROOT), timeout=1200)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    try:
        yield tag
    finally:
        docker("rmi", "--force", tag)


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = f"ranvier-test-{uuid.uuid4().hex[:12]}"
    volume = f"{name}-data"
    started = docker(
        "run",
        "--detach",
        "--name",
        name,
        "--volume",
        f"{volume}:/data",
        "--env",
        "SERVER_NAME=docker.test",
        # a loopback port of the host's choosing, never an outside address
        "--publish",
        "127.0.0.1::8008",
        image,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        docker("rm", "--force", name)
        docker("volume", "rm", "--force", volume)


def published_url(container: str) -> str:
    port = docker("port", container, "8008/tcp").stdout.strip().splitlines()[0]
    return "http://" + port.replace("0.0.0.0", "127.0.0.1")


def health(container: str) -> str:
    inspected = docker("inspect", "--format", "{{json .State.Health}}", container)
    state: str = json.loads(inspected.stdout)["Status"]
    return state


def test_the_image_starts_healthy_and_serves_clients(container: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while health(container) != "healthy":
        assert time.monotonic() < deadline, docker("logs", container).stdout
        assert health(container) != "unhealthy", docker("logs", container).stdout
        time.sleep(2)
    url = published_url(container)
    versions = request("GET", url + "/_matrix/client/versions")
    assert versions.status == 200
    assert versions.json()["versions"]
    # an admin makes a user inside the container; the client logs in from outside it, on
    # the server SERVER_NAME named
    made = docker(
        "exec",
        container,
        "ranvier",
        "register-user",
        "-c",
        "/data/homeserver.yaml",
        "--user",
        "alice",
        "--password",
        "from the host",
    )
    assert made.returncode == 0, made.stderr
    assert login(url, "alice", "from the host").user_id == "@alice:docker.test"


def test_it_runs_as_a_user_who_owns_only_data(container: str) -> None:
    uid = docker("exec", container, "id", "-u").stdout.strip()
    assert uid != "0"
    assert uid == "991"
    listing = docker("exec", container, "ls", "/data").stdout.split()
    assert "homeserver.yaml" in listing
    assert "docker.test.signing.key" in listing
    config = docker("exec", container, "cat", "/data/homeserver.yaml").stdout
    assert "server_name: docker.test" in config


def test_it_stops_promptly_on_docker_stop(container: str) -> None:
    began = time.monotonic()
    stopped = docker("stop", "--time", "20", container, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - began < 10
    code = docker("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
    assert code == "0", docker("logs", container).stdout


def test_without_server_name_or_config_it_says_what_to_do(image: str) -> None:
    result = docker("run", "--rm", image, timeout=120)
    assert result.returncode == 1
    assert "Set SERVER_NAME" in result.stderr
