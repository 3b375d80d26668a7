"""X-Matrix request signing (spec: server-server-api "Request Authentication")."""

from __future__ import annotations

import pytest

from ranvier.protocol.request_auth import (
    AuthorizationHeaderError,
    XMatrixAuthorization,
    authorization_header,
    parse_authorization_header,
    request_json,
)
from ranvier.protocol.signing import InvalidSignatureError, verify_json
from ranvier.protocol.signing_keys import ServerSigningKey

KEY = ServerSigningKey.from_seed(bytes(range(32)), "key1")


def test_the_spec_example_header_parses() -> None:
    header = (
        'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
        'key="ed25519:key1",sig="ABCDEF..."'
    )
    assert parse_authorization_header(header) == XMatrixAuthorization(
        origin="origin.hs.example.com",
        destination="destination.hs.example.com",
        key="ed25519:key1",
        sig="ABCDEF...",
    )


@pytest.mark.parametrize(
    "header",
    [
        # unquoted tokens, colons allowed unquoted for older servers, any order and case
        "X-Matrix origin=a.example:8448,Key=ed25519:k,SIG=c2ln,destination=b.example",
        # spaces and tabs around commas and equals, several spaces after the scheme
        'x-matrix   origin = "a.example:8448" ,\tkey="ed25519:k" , sig="c2ln", '
        'destination="b.example"',
        # unknown parameters are ignored; escapes are undone
        'X-Matrix origin="a.example:8448",extra="x\\"y",key="ed25519:\\k",sig="c2ln",'
        'destination="b.example"',
    ],
)
def test_header_forms_the_grammar_allows(header: str) -> None:
    parsed = parse_authorization_header(header)
    assert parsed == XMatrixAuthorization("a.example:8448", "b.example", "ed25519:k", "c2ln")


def test_destination_may_be_absent_for_older_servers() -> None:
    parsed = parse_authorization_header('X-Matrix origin="a",key="ed25519:k",sig="s"')
    assert parsed.destination is None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "X-Matrix",
        "X-Matrix ",
        'X-Matrix origin="a",key="ed25519:k"',  # no sig
        'X-Matrix key="ed25519:k",sig="s"',  # no origin
        'X-Matrix origin="",key="ed25519:k",sig="s"',  # empty origin
        'X-Matrix origin="a",key="ed25519:k",sig="s",origin="b"',  # twice
        'X-Matrix origin="a" key="ed25519:k",sig="s"',  # no comma
        'X-Matrix origin="a,key="ed25519:k",sig="s"',  # unclosed quote
        "X-Matrix origin=a b,key=ed25519:k,sig=s",  # space inside a token
        'X-Matrix origin="a",key="ed25519:k",sig="s",',  # trailing comma
        'X-Matrix origin="a",,key="ed25519:k",sig="s"',
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(AuthorizationHeaderError):
        parse_authorization_header(header)


def test_errors_are_value_errors() -> None:
    assert issubclass(AuthorizationHeaderError, ValueError)


def test_the_signed_json_leaves_content_out_without_a_body() -> None:
    assert request_json("GET", "/x?a=1", "o", "d") == {
        "method": "GET",
        "uri": "/x?a=1",
        "origin": "o",
        "destination": "d",
    }
    assert request_json("PUT", "/x", "o", "d", {})["content"] == {}


def test_built_header_verifies_over_the_request_json() -> None:
    content = {"a": [1, 2], "b": "é"}
    header = authorization_header(
        KEY,
        method="PUT",
        uri="/_matrix/federation/v1/send/1",
        origin="origin.example",
        destination="dest.example:8448",
        content=content,
    )
    assert header.startswith('X-Matrix origin="origin.example",destination="dest.example:8448",')
    parsed = parse_authorization_header(header)
    assert (parsed.origin, parsed.destination, parsed.key) == (
        "origin.example",
        "dest.example:8448",
        "ed25519:key1",
    )
    signed = request_json(
        "PUT", "/_matrix/federation/v1/send/1", "origin.example", "dest.example:8448", content
    )
    signed["signatures"] = {"origin.example": {parsed.key: parsed.sig}}
    verify_json(signed, "origin.example", {parsed.key: KEY.verify_key})
    # any change to what was signed breaks it
    for field, value in [("uri", "/_matrix/federation/v1/send/2"), ("method", "POST")]:
        tampered = {**signed, field: value}
        with pytest.raises(InvalidSignatureError):
            verify_json(tampered, "origin.example", {parsed.key: KEY.verify_key})
    with pytest.raises(InvalidSignatureError):
        verify_json(
            {**signed, "destination": "other.example"},
            "origin.example",
            {parsed.key: KEY.verify_key},
        )
