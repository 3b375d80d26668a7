"""Content hashes and reference hashes."""

from __future__ import annotations

import base64
import copy
import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st
from spec_vectors import MINIMAL_EVENT_SIGNED, REDACTABLE_EVENT_SIGNED, minimal_event

from ranvier.protocol.hashing import (
    add_content_hash,
    compute_content_hash,
    compute_reference_hash,
    content_hash_matches,
)
from ranvier.protocol.room_versions import V1, V3, V11


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def test_content_hashes_of_the_appendix_events() -> None:
    for signed in (MINIMAL_EVENT_SIGNED, REDACTABLE_EVENT_SIGNED):
        assert _b64(compute_content_hash(signed)) == signed["hashes"]["sha256"]
        assert content_hash_matches(signed)


def test_content_hash_ignores_unsigned_signatures_and_hashes() -> None:
    event = minimal_event()
    baseline = compute_content_hash(event)
    event["unsigned"] = {"age": 1}
    event["signatures"] = {"x": {"ed25519:1": "sig"}}
    event["hashes"] = {"sha256": "whatever"}
    assert compute_content_hash(event) == baseline
    event["content"] = {"body": "changed"}
    assert compute_content_hash(event) != baseline


def test_add_content_hash_does_not_modify_its_input() -> None:
    event = minimal_event()
    before = copy.deepcopy(event)
    hashed = add_content_hash(event)
    assert event == before
    assert hashed["hashes"] == MINIMAL_EVENT_SIGNED["hashes"]


def test_content_hash_mismatches() -> None:
    signed = copy.deepcopy(REDACTABLE_EVENT_SIGNED)
    signed["content"]["body"] = "edited"
    assert not content_hash_matches(signed)
    for hashes in ({}, {"sha256": 5}, {"sha256": "@@@"}, {"sha256": "é"}, "nope"):
        signed["hashes"] = hashes
        assert not content_hash_matches(signed)


def test_reference_hash_is_sha256_of_the_redacted_event_without_signatures() -> None:
    signed = copy.deepcopy(REDACTABLE_EVENT_SIGNED)
    essential = {k: v for k, v in signed.items() if k not in ("signatures", "unsigned", "content")}
    essential["content"] = {}
    expected = hashlib.sha256(
        json.dumps(essential, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    assert compute_reference_hash(signed, V1) == expected
    # neither signatures nor redactable content change it
    signed["signatures"] = {}
    signed["content"] = {"body": "other"}
    assert compute_reference_hash(signed, V1) == expected


def test_reference_hash_depends_on_the_redaction_rules() -> None:
    event = dict(minimal_event(), hashes={"sha256": "x"})
    # v11 redaction drops `origin`, v3 keeps it
    assert compute_reference_hash(event, V3) != compute_reference_hash(event, V11)
    assert compute_reference_hash(event, V11) == compute_reference_hash(
        {k: v for k, v in event.items() if k != "origin"}, V11
    )


@given(st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)))
def test_any_content_change_changes_the_content_hash(body: str) -> None:
    event = dict(minimal_event(), content={"body": body})
    other = dict(minimal_event(), content={"body": body + "!"})
    assert compute_content_hash(event) != compute_content_hash(other)
    assert content_hash_matches(add_content_hash(event))
