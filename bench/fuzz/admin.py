"""Synapse's admin API (`/_synapse/admin/...`), as far as Ranvier serves it, for the fuzzer.

The Matrix spec does not define these paths, so their definitions are written here, from
Synapse's admin API documentation (docs/admin_api.md says which Ranvier serves): path and
query parameters, and the body keys each takes with their types. They are fuzzed after the
Client-Server operations, mostly with the admin's token; the users they act on are the
victim, `other` and names of nobody, never the main user or the admin (world.py).
"""

from __future__ import annotations

from typing import Any

ADMIN = "/_synapse/admin"
_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


_PAGING = {"from": _INTEGER, "limit": _INTEGER, "dir": {"enum": ["f", "b"]}}

# (method, path, query parameters, body schema or None)
ADMIN_OPERATIONS: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
    ("get", "/v1/server_version", {}, None),
    ("get", "/v1/background_updates/status", {}, None),
    ("get", "/v1/background_updates/enabled", {}, None),
    ("post", "/v1/background_updates/enabled", {}, _object(enabled=_BOOLEAN)),
    ("post", "/v1/background_updates/start_job", {}, _object(job_name=_STRING)),
    (
        "get",
        "/v2/users",
        {
            **_PAGING,
            "from": _STRING,
            "name": _STRING,
            "user_id": _STRING,
            "guests": _BOOLEAN,
            "deactivated": _BOOLEAN,
            "admins": _BOOLEAN,
            "order_by": _STRING,
        },
        None,
    ),
    ("get", "/v2/users/{userId}", {}, None),
    (
        "put",
        "/v2/users/{userId}",
        {},
        _object(
            password=_STRING,
            logout_devices=_BOOLEAN,
            displayname=_STRING,
            avatar_url=_STRING,
            admin=_BOOLEAN,
            deactivated=_BOOLEAN,
            locked=_BOOLEAN,
            user_type={"type": ["string", "null"]},
            threepids={"type": "array", "items": _object(medium=_STRING, address=_STRING)},
            external_ids={"type": "array", "items": _object(auth_provider=_STRING)},
        ),
    ),
    ("get", "/v1/users/{userId}/admin", {}, None),
    ("put", "/v1/users/{userId}/admin", {}, _object(admin=_BOOLEAN)),
    ("post", "/v1/deactivate/{userId}", {}, _object(erase=_BOOLEAN)),
    (
        "post",
        "/v1/reset_password/{userId}",
        {},
        _object(new_password=_STRING, logout_devices=_BOOLEAN),
    ),
    ("get", "/v1/whois/{userId}", {}, None),
    ("get", "/v1/users/{userId}/pushers", {}, None),
    ("get", "/v1/register", {}, None),
    (
        "post",
        "/v1/register",
        {},
        _object(nonce=_STRING, username=_STRING, password=_STRING, admin=_BOOLEAN, mac=_STRING),
    ),
    ("get", "/v1/registration_tokens", {"valid": _BOOLEAN}, None),
    (
        "post",
        "/v1/registration_tokens/new",
        {},
        _object(token=_STRING, uses_allowed=_INTEGER, expiry_time=_INTEGER, length=_INTEGER),
    ),
    ("get", "/v1/registration_tokens/{token}", {}, None),
    (
        "put",
        "/v1/registration_tokens/{token}",
        {},
        _object(uses_allowed=_INTEGER, expiry_time=_INTEGER),
    ),
    ("delete", "/v1/registration_tokens/{token}", {}, None),
    (
        "get",
        "/v1/rooms",
        {**_PAGING, "order_by": _STRING, "search_term": _STRING, "public_rooms": _BOOLEAN},
        None,
    ),
    ("get", "/v1/rooms/{roomId}", {}, None),
    ("get", "/v1/rooms/{roomId}/members", {}, None),
    ("get", "/v1/rooms/{roomId}/state", {}, None),
    ("get", "/v1/rooms/{roomId}/block", {}, None),
    ("put", "/v1/rooms/{roomId}/block", {}, _object(block=_BOOLEAN)),
    (
        "delete",
        "/v1/rooms/{roomId}",
        {},
        _object(block=_BOOLEAN, purge=_BOOLEAN, message=_STRING, new_room_user_id=_STRING),
    ),
    (
        "delete",
        "/v2/rooms/{roomId}",
        {},
        _object(
            block=_BOOLEAN,
            purge=_BOOLEAN,
            force_purge=_BOOLEAN,
            message=_STRING,
            room_name=_STRING,
            new_room_user_id=_STRING,
        ),
    ),
    ("get", "/v2/rooms/{roomId}/delete_status", {}, None),
    ("get", "/v2/rooms/delete_status/{deleteId}", {}, None),
    (
        "get",
        "/v1/event_reports",
        {**_PAGING, "user_id": _STRING, "room_id": _STRING, "event_sender_user_id": _STRING},
        None,
    ),
    ("get", "/v1/event_reports/{reportId}", {}, None),
    ("delete", "/v1/event_reports/{reportId}", {}, None),
    (
        "post",
        "/v1/media/delete",
        {"before_ts": _INTEGER, "size_gt": _INTEGER, "keep_profiles": _BOOLEAN},
        None,
    ),
    ("post", "/v1/media/{serverName}/delete", {"before_ts": _INTEGER}, None),
    ("post", "/v1/media/quarantine/{serverName}/{mediaId}", {}, None),
    ("post", "/v1/media/unquarantine/{serverName}/{mediaId}", {}, None),
    ("post", "/v1/media/protect/{mediaId}", {}, None),
    ("post", "/v1/media/unprotect/{mediaId}", {}, None),
    ("get", "/v1/media/{serverName}/{mediaId}", {}, None),
    ("delete", "/v1/media/{serverName}/{mediaId}", {}, None),
    ("post", "/v1/room/{roomId}/media/quarantine", {}, None),
    ("post", "/v1/quarantine_media/{roomId}", {}, None),
    ("get", "/v1/room/{roomId}/media", {}, None),
    ("post", "/v1/user/{userId}/media/quarantine", {}, None),
    ("get", "/v1/users/{userId}/media", {**_PAGING, "order_by": _STRING}, None),
    ("delete", "/v1/users/{userId}/media", {**_PAGING, "order_by": _STRING}, None),
    ("get", "/v2/users/{userId}/devices", {}, None),
    ("post", "/v2/users/{userId}/devices", {}, _object(device_id=_STRING)),
    ("get", "/v2/users/{userId}/devices/{deviceId}", {}, None),
    ("put", "/v2/users/{userId}/devices/{deviceId}", {}, _object(display_name=_STRING)),
    ("delete", "/v2/users/{userId}/devices/{deviceId}", {}, None),
    (
        "post",
        "/v2/users/{userId}/delete_devices",
        {},
        _object(devices={"type": "array", "items": _STRING}),
    ),
    ("post", "/v1/users/{userId}/login", {}, _object(valid_until_ms=_INTEGER)),
    ("get", "/v1/users/{userId}/joined_rooms", {}, None),
    ("get", "/v1/users/{userId}/accountdata", {}, None),
    ("get", "/v1/users/{userId}/sent_invite_count", {"from_ts": _INTEGER}, None),
    ("get", "/v1/users/{userId}/cumulative_joined_room_count", {"from_ts": _INTEGER}, None),
    ("post", "/v1/users/{userId}/shadow_ban", {}, None),
    ("delete", "/v1/users/{userId}/shadow_ban", {}, None),
    ("get", "/v1/users/{userId}/override_ratelimit", {}, None),
    (
        "post",
        "/v1/users/{userId}/override_ratelimit",
        {},
        _object(messages_per_second=_INTEGER, burst_count=_INTEGER),
    ),
    ("delete", "/v1/users/{userId}/override_ratelimit", {}, None),
    ("get", "/v1/username_available", {"username": _STRING}, None),
    (
        "post",
        "/v1/send_server_notice",
        {},
        _object(user_id=_STRING, content=_object(msgtype=_STRING, body=_STRING), type=_STRING),
    ),
    (
        "put",
        "/v1/send_server_notice/{txnId}",
        {},
        _object(user_id=_STRING, content=_object(msgtype=_STRING, body=_STRING), state_key=_STRING),
    ),
    ("post", "/v1/join/{roomId}", {}, _object(user_id=_STRING)),
    ("post", "/v1/rooms/{roomId}/make_room_admin", {}, _object(user_id=_STRING)),
    (
        "get",
        "/v1/statistics/users/media",
        {
            **_PAGING,
            "order_by": _STRING,
            "from_ts": _INTEGER,
            "until_ts": _INTEGER,
            "search_term": _STRING,
        },
        None,
    ),
    ("get", "/v1/statistics/database/rooms", {}, None),
    ("get", "/v1/rooms/{roomId}/forward_extremities", {}, None),
    ("delete", "/v1/rooms/{roomId}/forward_extremities", {}, None),
    (
        "post",
        "/v1/user/{userId}/redact",
        {},
        _object(rooms={"type": "array", "items": _STRING}, reason=_STRING, limit=_INTEGER),
    ),
    ("get", "/v1/user/redact_status/{redactId}", {}, None),
    (
        "get",
        "/v1/rooms/{roomId}/timestamp_to_event",
        {"ts": _INTEGER, "dir": {"enum": ["f", "b"]}},
        None,
    ),
]


def admin_paths() -> dict[str, dict[str, Any]]:
    """The operations above as OpenAPI `paths`, every parameter a string unless typed."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, query, body in ADMIN_OPERATIONS:
        template = ADMIN + path
        parameters: list[dict[str, Any]] = [
            {"in": "path", "name": name, "required": True, "schema": _STRING}
            for name in _names(template)
        ]
        parameters += [
            {"in": "query", "name": name, "required": False, "schema": schema}
            for name, schema in query.items()
        ]
        operation: dict[str, Any] = {
            "parameters": parameters,
            "responses": {"default": {"description": "any answer"}},
        }
        if body is not None:
            operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
        paths.setdefault(template, {})[method] = operation
    return paths


def _names(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]
