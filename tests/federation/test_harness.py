"""The federation harness works: each Ranvier serves HTTPS as its own `localhost:<port>`
with a certificate the test CA verifies, and a real Synapse peer answers over TLS too."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, FederationCA, register, served_certificate
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse


def test_each_ranvier_serves_https_as_its_own_server_name(
    two_servers: ServerPair, test_ca: FederationCA
) -> None:
    names = set()
    for server in two_servers:
        version = server.request("GET", "/_matrix/federation/v1/version")
        assert version.status == 200, version.body
        assert version.json()["server"]["name"] == "Ranvier"
        session = register(server, "harness")
        assert session.user_id == f"@harness:{server.server_name}"
        names.add(server.server_name)
        # the CA verified it for "localhost"; it is the file the server was given
        served = served_certificate(test_ca, server.port)
        given = ssl.PEM_cert_to_DER_cert(server.certificate_path.read_text())
        assert served == given
    assert len(names) == 2


def test_an_untrusting_client_refuses_the_certificate(two_servers: ServerPair) -> None:
    # the certificate is the test CA's: the system's trust store does not verify it
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", two_servers.first.port), timeout=5) as raw:
        try:
            context.wrap_socket(raw, server_hostname="localhost").close()
        except ssl.SSLCertVerificationError:
            return
    raise AssertionError("a client without the test CA accepted the certificate")


def test_synapse_answers_over_tls(synapse: SynapsePeer) -> None:
    version = synapse.request("GET", "/_matrix/federation/v1/version")
    assert version.status == 200, version.body
    assert version.json()["server"]["name"] == "Synapse"
    session = register_on_synapse(synapse, "peer")
    assert session.user_id == f"@peer:{synapse.server_name}"
    whoami = synapse.authed(session, "GET", "/_matrix/client/v3/account/whoami")
    assert whoami.json()["user_id"] == session.user_id


def keys_through_notary(notary: FederatingServer, server_name: str, key_id: str) -> Any:
    query = {"server_keys": {server_name: {key_id: {"minimum_valid_until_ts": 0}}}}
    reply = notary.request("POST", "/_matrix/key/v2/query", query)
    assert reply.status == 200, reply.body
    return [k for k in reply.json()["server_keys"] if k["server_name"] == server_name]


def test_each_ranvier_reaches_the_others_over_tls(
    two_servers: ServerPair, synapse: SynapsePeer
) -> None:
    # a Ranvier's notary fetches the key from its server over HTTPS, trusting the test CA
    # and allowed to loopback: the outbound half of the harness
    first, second = two_servers
    for asker, target in ((first, second), (second, first), (first, synapse)):
        published = target.request("GET", "/_matrix/key/v2/server").json()
        key_id = next(iter(published["verify_keys"]))
        answers = keys_through_notary(asker, target.server_name, key_id)
        assert [a["verify_keys"] for a in answers] == [published["verify_keys"]], (
            f"{asker.server_name} could not fetch {target.server_name}'s keys:\n"
            + asker.log()[-3000:]
        )
