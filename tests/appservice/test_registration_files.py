"""Registration files as an admin writes them: a server starts with a good one, and a bad
one stops start-up with the file and the problem named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ranvier.config.appservices import load_appservices
from ranvier.config.errors import ConfigError

GOOD = {
    "id": "irc",
    "url": "http://127.0.0.1:9999",
    "as_token": "as-secret",
    "hs_token": "hs-secret",
    "sender_localpart": "_irc_bot",
    "namespaces": {
        "users": [{"exclusive": True, "regex": "@_irc_.*"}],
        "aliases": [{"exclusive": False, "regex": "#_irc_.*"}],
        "rooms": [],
    },
}


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_a_good_registration_is_read_with_its_namespaces(tmp_path: Path) -> None:
    (service,) = load_appservices([write(tmp_path, "irc.yaml", GOOD)], "example.org")
    assert service.sender == "@_irc_bot:example.org"
    assert service.is_exclusive_user("@_irc_alice:example.org")
    assert not service.is_user_in_namespace("@_irc_alice:elsewhere.org")
    assert service.is_alias_in_namespace("#_irc_chat:example.org")
    assert not service.is_exclusive_alias("#_irc_chat:example.org")
    assert service.rate_limited


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"as_token": None}, "'as_token' is required"),
        (
            {"namespaces": {"users": [{"exclusive": True, "regex": "@(unclosed"}]}},
            "not a valid regular expression",
        ),
        ({"namespaces": {"users": [{"regex": "@_irc_.*"}]}}, "exclusive is required"),
        ({"url": "ftp://nowhere"}, "'url' must be an http"),
        ({"sender_localpart": "Bad Bot"}, "not a valid user ID localpart"),
    ],
)
def test_a_bad_registration_is_refused_naming_the_file(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    path = write(tmp_path, "bad.yaml", {**GOOD, **change})
    with pytest.raises(ConfigError) as refused:
        load_appservices([path], "example.org")
    assert problem in str(refused.value)
    assert path in str(refused.value)


def test_a_missing_url_key_is_refused_but_null_is_accepted(tmp_path: Path) -> None:
    without = {k: v for k, v in GOOD.items() if k != "url"}
    with pytest.raises(ConfigError, match="'url' is required"):
        load_appservices([write(tmp_path, "a.yaml", without)], "example.org")
    (service,) = load_appservices([write(tmp_path, "b.yaml", {**GOOD, "url": None})], "example.org")
    assert service.url is None


def test_two_services_may_not_share_an_id_or_an_as_token(tmp_path: Path) -> None:
    first = write(tmp_path, "first.yaml", GOOD)
    same_id = write(tmp_path, "second.yaml", {**GOOD, "as_token": "other"})
    same_token = write(tmp_path, "third.yaml", {**GOOD, "id": "other"})
    with pytest.raises(ConfigError) as refused:
        load_appservices([first, same_id, same_token], "example.org")
    message = str(refused.value)
    assert "id 'irc' is already the id of the service in" in message
    assert "as_token is the same as the one in" in message
