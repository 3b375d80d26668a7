"""Test vectors copied from the Matrix spec (content/appendices.md), shared by the tests here."""

from __future__ import annotations

import base64
from typing import Any

from ranvier.protocol.signing_keys import ServerSigningKey

# spec: appendices "Cryptographic Test Vectors" - Signing Key
SIGNING_KEY_SEED_B64 = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SERVER_NAME = "domain"
KEY_ID = "ed25519:1"


def spec_signing_key() -> ServerSigningKey:
    # decoded with the stdlib, not our own decoder, so a decoder bug cannot hide here
    seed = base64.b64decode(SIGNING_KEY_SEED_B64 + "=")
    return ServerSigningKey.from_seed(seed, "1")


# spec: appendices "Canonical JSON" examples: (input JSON text, canonical output text)
CANONICAL_JSON_EXAMPLES: list[tuple[str, str]] = [
    ("{}", "{}"),
    ('{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{\n    "a": "日本語"\n}', '{"a":"日本語"}'),
    ('{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'),
    ('{\n    "a": "\\u65E5"\n}', '{"a":"日"}'),
    ('{\n    "a": null\n}', '{"a":null}'),
    ('{\n    "a": -0,\n    "b": 1e10\n}', '{"a":0,"b":10000000000}'),
]

# spec: appendices "JSON Signing": (input, signed output)
JSON_SIGNING_VECTORS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {},
        {
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV"
                    "/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                }
            }
        },
    ),
    (
        {"one": 1, "two": "Two"},
        {
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7v"
                    "BZhG6kYdD13EIMJpvhJI+6Bw"
                }
            },
            "two": "Two",
        },
    ),
]


def minimal_event() -> dict[str, Any]:
    """spec: appendices "Event Signing" - the minimally-sized event."""
    return {
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }


MINIMAL_EVENT_SIGNED: dict[str, Any] = {
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAW"
            "bOoMszkwsQma+lYAg"
        }
    },
    "type": "X",
    "unsigned": {"age_ts": 1000000},
}


def redactable_event() -> dict[str, Any]:
    """spec: appendices "Event Signing" - the event containing redactable content."""
    return {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }


REDACTABLE_EVENT_SIGNED: dict[str, Any] = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYH"
            "YMGCA5McEiVPdhzBA"
        }
    },
    "unsigned": {"age_ts": 1000000},
}
