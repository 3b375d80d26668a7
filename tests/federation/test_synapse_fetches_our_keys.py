"""A real Synapse, asked as a notary for a Ranvier server's keys, fetches them from Ranvier
over TLS (verified against the test CA), checks Ranvier's signature, and serves them
countersigned: the keys it returns are the ones Ranvier publishes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nacl.signing import VerifyKey

from ranvier.protocol.signing import verify_json
from ranvier.protocol.signing_keys import decode_verify_key
from tests.federation.harness import FederatingServer, FederationCA, federating
from tests.federation.synapse_peer import SynapsePeer


def verify_keys_of(response: dict[str, Any]) -> dict[str, VerifyKey]:
    return {
        key_id: decode_verify_key(key["key"]) for key_id, key in response["verify_keys"].items()
    }


def synapse_keys(synapse: SynapsePeer) -> dict[str, Any]:
    reply = synapse.request("GET", "/_matrix/key/v2/server")
    assert reply.status == 200, reply.body
    keys: dict[str, Any] = reply.json()
    return keys


@pytest.fixture(scope="module")
def ranvier(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    with federating(tmp_path_factory.mktemp("hs"), sqlite_section, test_ca) as server:
        yield server


def test_synapse_notary_returns_the_keys_ranvier_publishes(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    published = ranvier.request("GET", "/_matrix/key/v2/server")
    assert published.status == 200, published.body
    own = published.json()
    assert own["server_name"] == ranvier.server_name
    key_id = next(iter(own["verify_keys"]))

    # naming the key ID makes Synapse fetch what it does not hold (it answers a query for
    # all keys from its cache alone)
    query = {"server_keys": {ranvier.server_name: {key_id: {"minimum_valid_until_ts": 0}}}}
    reply = synapse.request("POST", "/_matrix/key/v2/query", query)
    assert reply.status == 200, reply.body
    answers = [k for k in reply.json()["server_keys"] if k["server_name"] == ranvier.server_name]
    assert len(answers) == 1, f"Synapse's answer: {reply.body!r}\n{synapse.log()[-4000:]}"
    answer = answers[0]
    assert answer["verify_keys"] == own["verify_keys"]
    # the response Synapse fetched, signed by Ranvier's key (which Synapse checked), and
    # countersigned by Synapse as the notary
    verify_json(answer, ranvier.server_name, verify_keys_of(own))
    verify_json(answer, synapse.server_name, verify_keys_of(synapse_keys(synapse)))

    # and now it serves them to anyone who asks for the server's keys
    cached = synapse.request("GET", f"/_matrix/key/v2/query/{ranvier.server_name}")
    assert cached.status == 200, cached.body
    assert [k["verify_keys"] for k in cached.json()["server_keys"]] == [own["verify_keys"]]
