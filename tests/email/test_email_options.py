"""The `email` section's options seen from outside, on one server per engine that mails
through STARTTLS (required, with the certificate checked for `tlsname`), finds templates in
`email.template_dir`, hides which addresses are registered
(`request_token_inhibit_3pid_errors`), refuses users' address changes
(`enable_3pid_changes: false`), offers email beside the dummy flow, and gives users who
register with an address an email pusher (`notif_for_new_users`)."""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from tests.email.conftest import email_section
from tests.email.smtp import CapturingSmtpServer, link_in, text_of
from tests.integration.client import request
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, authed, register

__all__ = ["module_database"]

MAIL_HOST = "mail.test.localhost"
EMAIL_STAGE = "m.login.email.identity"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def smtp(module_database: dict[str, Any], ca: trustme.CA) -> Iterator[CapturingSmtpServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(MAIL_HOST).configure_cert(context)
    with CapturingSmtpServer(tls_context=context, require_starttls=True) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    smtp: CapturingSmtpServer,
    ca: trustme.CA,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    templates = directory / "mail_templates"
    templates.mkdir()
    (templates / "registration.txt").write_text("Custom text for {{ server_name }}: {{ link }}\n")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    config = write_test_config(
        directory,
        module_database,
        port,
        public_baseurl=f"http://127.0.0.1:{port}/",
        enable_registration=True,
        enable_registration_without_verification=True,
        request_token_inhibit_3pid_errors=True,
        enable_3pid_changes=False,
        email=email_section(
            smtp,
            require_transport_security=True,
            tlsname=MAIL_HOST,
            template_dir=str(templates),
            enable_notifs=True,
            notif_for_new_users=True,
        ),
    )
    # the server process trusts the test CA the way OpenSSL lets any program be told to
    saved = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(ca_file)
    try:
        running = start_server(config, port)
    finally:
        if saved is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = saved
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()


def request_token(server: RunningServer, path: str, address: str, secret: str) -> Any:
    body = {"client_secret": secret, "email": address, "send_attempt": 1}
    return request("POST", server.url + CLIENT + path, body)


def test_email_is_offered_beside_the_dummy_flow(server: RunningServer) -> None:
    reply = request("POST", server.url + CLIENT + "/register", {})
    assert reply.json()["flows"] == [{"stages": ["m.login.dummy"]}, {"stages": [EMAIL_STAGE]}]
    # the deprecated option works, and start-up says so
    assert "email.template_dir is deprecated" in server.log()


def test_mail_goes_over_starttls_with_the_custom_template_and_new_users_get_a_pusher(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    secret = secrets.token_urlsafe(8)
    reply = request_token(server, "/register/email/requestToken", "gina@example.org", secret)
    assert reply.status == 200, reply.body
    mail = smtp.wait_for_mail("gina@example.org")
    # aiosmtpd (require_starttls) takes no mail before STARTTLS, and its certificate names
    # tlsname, not the address connected to: the mail arriving shows both took effect.
    # The text part is the admin's template; the HTML part, absent there, is Ranvier's
    assert text_of(mail).startswith("Custom text for test.localhost: http://127.0.0.1:")
    assert request("GET", link_in(mail)).status == 200
    registered = request(
        "POST",
        server.url + CLIENT + "/register",
        {
            "username": "gina",
            "password": DEFAULT_PASSWORD,
            "auth": {
                "type": EMAIL_STAGE,
                "threepid_creds": {"sid": reply.json()["sid"], "client_secret": secret},
            },
        },
    )
    assert registered.status == 200, registered.body
    gina = Session(
        registered.json()["user_id"],
        registered.json()["access_token"],
        registered.json()["device_id"],
    )
    pushers = authed(gina, "GET", server.url + CLIENT + "/pushers").json()["pushers"]
    assert [(p["kind"], p["app_id"], p["pushkey"]) for p in pushers] == [
        ("email", "m.email", "gina@example.org")
    ]


def test_an_unknown_address_answers_like_a_known_one(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    reply = request_token(
        server, "/account/password/email/requestToken", "ghost@example.org", "s3cret"
    )
    assert reply.status == 200 and reply.json()["sid"]
    assert smtp.mails_to("ghost@example.org") == []


def test_users_cannot_change_their_addresses(server: RunningServer) -> None:
    henry = register(server.url, "henry")
    reply = request_token(server, "/account/3pid/email/requestToken", "h@example.org", "s")
    assert reply.status == 400 and reply.errcode == "M_FORBIDDEN"
    deleted = authed(
        henry,
        "POST",
        server.url + CLIENT + "/account/3pid/delete",
        {"medium": "email", "address": "h@example.org"},
    )
    assert deleted.status == 400 and deleted.errcode == "M_FORBIDDEN"
    capabilities = authed(henry, "GET", server.url + CLIENT + "/capabilities").json()
    assert capabilities["capabilities"]["m.3pid_changes"] == {"enabled": False}


def test_request_token_is_rate_limited_per_client(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    """rc_3pid_validation keeps Synapse's default here (burst 5): runs last in the module,
    as it empties the bucket of the address every test connects from."""
    replies = [
        request_token(server, "/register/email/requestToken", f"flood{n}@example.org", f"secret{n}")
        for n in range(7)
    ]
    limited = [reply for reply in replies if reply.status == 429]
    assert limited, [reply.status for reply in replies]
    assert limited[0].errcode == "M_LIMIT_EXCEEDED"
    assert int(limited[0].headers["Retry-After"]) >= 1
    # what was refused mailed nothing
    assert len([m for m in smtp.messages if str(m["To"]).startswith("flood")]) == 7 - len(limited)
