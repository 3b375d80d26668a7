"""Server ACLs (spec: m.room.server_acl; appendices "Glob-style matching")."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ranvier.protocol.server_acl import (
    ServerAcl,
    glob_matches,
    host_of,
    is_ip_literal,
    server_allowed,
)


def allowed(content: dict[str, Any], server: str) -> bool:
    return server_allowed(content, server)


def test_no_acl_allows_everyone() -> None:
    assert server_allowed(None, "evil.example")
    assert server_allowed(None, "1.2.3.4")


def test_deny_is_checked_before_allow() -> None:
    content = {"allow": ["*"], "deny": ["evil.com", "*.evil.com"]}
    assert allowed(content, "good.org")
    assert not allowed(content, "evil.com")
    assert not allowed(content, "sub.evil.com")
    # a name that only ends in the denied one is a different server
    assert allowed(content, "notevil.com")


def test_nothing_in_allow_denies_everyone() -> None:
    assert not allowed({}, "good.org")
    assert not allowed({"deny": []}, "good.org")
    assert not allowed({"allow": []}, "good.org")


@pytest.mark.parametrize(
    "server", ["evil.com", "evil.com:8448", "evil.com:1234", "EVIL.com", "Evil.COM:443"]
)
def test_port_and_case_are_ignored(server: str) -> None:
    content = {"allow": ["*"], "deny": ["evil.com"]}
    assert not allowed(content, server)
    assert allowed({"allow": ["EVIL.COM"]}, server)


@pytest.mark.parametrize(
    "server", ["1.2.3.4", "1.2.3.4:8448", "[::1]", "[::1]:8448", "[2001:db8::7]"]
)
def test_ip_literals_denied_when_asked(server: str) -> None:
    assert not allowed({"allow": ["*"], "allow_ip_literals": False}, server)
    assert allowed({"allow": ["*"], "allow_ip_literals": True}, server)
    # absent: allowed
    assert allowed({"allow": ["*"]}, server)


def test_ip_literal_entries_match_without_port() -> None:
    assert allowed({"allow": ["[::1]"]}, "[::1]:8448")
    assert allowed({"allow": ["10.0.0.*"]}, "10.0.0.7:8448")
    assert not allowed({"allow": ["*"], "deny": ["[::1]"]}, "[::1]:443")


@pytest.mark.parametrize("host", ["1.2.3.4.example.org", "1.2.3", "256.1.1.1", "localhost"])
def test_names_that_are_not_ip_literals(host: str) -> None:
    assert not is_ip_literal(host)
    assert allowed({"allow": ["*"], "allow_ip_literals": False}, host)


@pytest.mark.parametrize(
    ("server", "host"),
    [
        ("example.org", "example.org"),
        ("example.org:8448", "example.org"),
        ("[::1]", "[::1]"),
        ("[::1]:8448", "[::1]"),
        ("1.2.3.4:1", "1.2.3.4"),
    ],
)
def test_host_of(server: str, host: str) -> None:
    assert host_of(server) == host


def test_question_mark_is_exactly_one_character() -> None:
    content = {"allow": ["server?.org"]}
    assert allowed(content, "server1.org")
    assert not allowed(content, "server.org")
    assert not allowed(content, "server12.org")


@pytest.mark.parametrize(
    ("content", "server", "expected"),
    [
        # a non-boolean allow_ip_literals counts as true (the spec's default)
        ({"allow": ["*"], "allow_ip_literals": "no"}, "1.2.3.4", True),
        ({"allow": ["*"], "allow_ip_literals": 0}, "1.2.3.4", True),
        # a non-list allow is empty: everyone is denied
        ({"allow": "*"}, "good.org", False),
        ({"allow": {"*": True}}, "good.org", False),
        # a non-list deny is empty
        ({"allow": ["*"], "deny": "good.org"}, "good.org", True),
        # entries that are not strings are skipped, the rest still apply
        ({"allow": [1, None, ["*"], "good.org"]}, "good.org", True),
        ({"allow": ["*"], "deny": [{"x": 1}, "bad.org"]}, "bad.org", False),
        ({"allow": ["*"], "deny": [{"x": 1}, "bad.org"]}, "good.org", True),
    ],
)
def test_malformed_content_is_read_as_synapse_reads_it(
    content: dict[str, Any], server: str, expected: bool
) -> None:
    assert allowed(content, server) is expected


def test_from_content_lower_cases_globs() -> None:
    acl = ServerAcl.from_content({"allow": ["A.ORG"], "deny": ["B.*"]})
    assert acl == ServerAcl(True, ("a.org",), ("b.*",))


def test_pathological_globs_answer_quickly() -> None:
    # a backtracking regex needs ages for this; the matcher walks it in len*len steps
    glob = "*a" * 30 + "*b"
    assert not glob_matches(glob, "a" * 255)


# -- properties --------------------------------------------------------------------------

ALPHABET = "ab.*?"
texts = st.text(alphabet="ab.", max_size=12)
globs = st.text(alphabet=ALPHABET, max_size=8)


def reference(glob: str, text: str) -> bool:
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.fullmatch(pattern, text, re.DOTALL) is not None


@given(globs, texts)
def test_glob_matches_like_a_regular_expression(glob: str, text: str) -> None:
    assert glob_matches(glob, text) is reference(glob, text)


@given(texts)
def test_a_glob_without_wildcards_matches_only_itself(text: str) -> None:
    assert glob_matches(text, text)
    assert not glob_matches(text, text + "a")
    assert glob_matches("*", text)
    assert glob_matches("?" * len(text), text)
    assert not glob_matches("?" * (len(text) + 1), text)


hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,5}){1,2}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)


@given(hostnames, ports, st.booleans())
def test_a_port_never_changes_the_answer(host: str, port: int, deny_it: bool) -> None:
    content = {"allow": ["*"], "deny": [host] if deny_it else []}
    assert allowed(content, f"{host}:{port}") is allowed(content, host) is not deny_it


@given(hostnames, st.booleans())
def test_case_never_changes_the_answer(host: str, upper_glob: bool) -> None:
    glob = host.upper() if upper_glob else host
    assert allowed({"allow": [glob]}, host.upper())
    assert allowed({"allow": [glob]}, host)


@given(st.ip_addresses(v=4), ports)
def test_ipv4_literals_follow_allow_ip_literals(address: Any, port: int) -> None:
    for server in (str(address), f"{address}:{port}"):
        assert not allowed({"allow": ["*"], "allow_ip_literals": False}, server)
        assert allowed({"allow": ["*"], "allow_ip_literals": True}, server)


@given(st.ip_addresses(v=6), ports)
def test_ipv6_literals_follow_allow_ip_literals(address: Any, port: int) -> None:
    for server in (f"[{address}]", f"[{address}]:{port}"):
        assert not allowed({"allow": ["*"], "allow_ip_literals": False}, server)
        assert allowed({"allow": ["*"], "allow_ip_literals": True}, server)
        assert allowed({"allow": [f"[{address}]"], "allow_ip_literals": True}, server)


@given(hostnames, hostnames)
def test_deny_wins_over_allow(denied: str, other: str) -> None:
    content = {"allow": ["*", denied], "deny": [denied]}
    assert not allowed(content, denied)
    assert allowed(content, other) is (other != denied)
