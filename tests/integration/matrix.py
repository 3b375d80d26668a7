"""Matrix-level helpers for integration tests: accounts to act as.

The server's config needs `enable_registration: true` and
`enable_registration_without_verification: true` for `register` (see REGISTRATION_CONFIG).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.integration.client import Reply, request

DEFAULT_PASSWORD = "correct horse battery staple"
CLIENT = "/_matrix/client/v3"
# pass as **overrides to write_test_config so that `register` works
REGISTRATION_CONFIG: dict[str, Any] = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
}


@dataclass(frozen=True)
class Session:
    user_id: str
    access_token: str
    device_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def authed(
    session: Session, method: str, url: str, body: bytes | dict[str, Any] | None = None
) -> Reply:
    """A request carrying `session`'s access token."""
    return request(method, url, body, session.headers)


def _session(reply: Reply, what: str) -> Session:
    if reply.status != 200:
        raise AssertionError(f"{what} failed: {reply.status} {reply.body!r}")
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def register(
    server_url: str, localpart: str, password: str = DEFAULT_PASSWORD, **extra: Any
) -> Session:
    """Register through /register with m.login.dummy, as a client would."""
    body = {
        "username": localpart,
        "password": password,
        "auth": {"type": "m.login.dummy"},
        **extra,
    }
    return _session(request("POST", server_url + CLIENT + "/register", body), "register")


def login(
    server_url: str, localpart: str, password: str = DEFAULT_PASSWORD, **extra: Any
) -> Session:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
        **extra,
    }
    return _session(request("POST", server_url + CLIENT + "/login", body), "login")


def admin_deactivate(server_url: str, admin: Session, user_id: str) -> None:
    """Deactivates `user_id` through the admin API, as a server admin would."""
    reply = authed(admin, "POST", f"{server_url}/_synapse/admin/v1/deactivate/{quote(user_id)}", {})
    assert reply.status == 200, reply.body


def reactivated(
    server_url: str, admin: Session, user_id: str, password: str = "a new password"
) -> Session:
    """`user_id`, deactivated, brought back by an admin with a new password, logged in."""
    body = {"deactivated": False, "password": password}
    reply = authed(admin, "PUT", f"{server_url}/_synapse/admin/v2/users/{quote(user_id)}", body)
    assert reply.status == 200, reply.body
    return login(server_url, user_id[1:].split(":", 1)[0], password)


def register_user_command(
    config_path: Path, localpart: str, password: str, *, admin: bool = False
) -> subprocess.CompletedProcess[str]:
    """`ranvier register-user` on the command line."""
    argv = [sys.executable, "-m", "ranvier.cli", "register-user", "-c", str(config_path)]
    argv += ["--user", localpart, "--password", password]
    if admin:
        argv.append("--admin")
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def server_url_of(config_path: Path) -> str:
    """The loopback URL of the server `write_test_config` configured."""
    raw = yaml.safe_load(config_path.read_text())
    return f"http://127.0.0.1:{raw['listeners'][0]['port']}"


def make_admin(config_path: Path, localpart: str, password: str = DEFAULT_PASSWORD) -> Session:
    """A server admin, made with `ranvier register-user --admin`, logged in."""
    done = register_user_command(config_path, localpart, password, admin=True)
    if done.returncode != 0:
        raise AssertionError(f"register-user failed: {done.stderr}")
    return login(server_url_of(config_path), localpart, password)


def create_room(server_url: str, session: Session, **body: Any) -> str:
    """POST /createRoom with `body`; the new room's ID."""
    reply = authed(session, "POST", server_url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def send_text(server_url: str, session: Session, room_id: str, text: str) -> str:
    """An m.text message sent with POST (a transaction ID of the server's choosing)."""
    url = server_url + CLIENT + f"/rooms/{quote(room_id)}/send/m.room.message"
    reply = authed(session, "POST", url, {"msgtype": "m.text", "body": text})
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id
