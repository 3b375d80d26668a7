"""The mailer against a real SMTP server (aiosmtpd) on loopback, in each transport mode of
the `email` section: STARTTLS when offered, STARTTLS required, implicit TLS (`force_tls`),
TLS off, and logging in. The server's certificate is for `tlsname`, issued by a test CA the
process is told to trust the way OpenSSL lets any program be (SSL_CERT_FILE)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from ranvier.config.email import EmailConfig
from ranvier.services.email.mailer import Mailer, MailNotSent
from tests.email.smtp import CapturingSmtpServer, html_of, text_of

MAIL_HOST = "mail.test.localhost"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(MAIL_HOST).configure_cert(context)
    return context


def mailer(port: int, **options: Any) -> Mailer:
    config = EmailConfig(
        smtp_host="127.0.0.1",
        smtp_port=port,
        tlsname=MAIL_HOST,
        notif_from="%(app)s <hs@test.localhost>",
        app_name="Mailer Test",
        **options,
    )
    return Mailer(config, "test.localhost")


@pytest.fixture
def starttls_server(ca: trustme.CA) -> Iterator[CapturingSmtpServer]:
    with CapturingSmtpServer(tls_context=server_context(ca)) as server:
        yield server


@pytest.fixture
def plain_server() -> Iterator[CapturingSmtpServer]:
    with CapturingSmtpServer() as server:
        yield server


async def test_starttls_is_used_when_offered_and_the_mail_is_multipart(
    trusted: None, starttls_server: CapturingSmtpServer
) -> None:
    await mailer(starttls_server.port).send("a@example.org", "Hi", "text body", "<p>html</p>")
    (message,) = starttls_server.messages
    assert message["From"] == "Mailer Test <hs@test.localhost>"
    assert message["Subject"] == "Hi"
    assert text_of(message).strip() == "text body"
    assert html_of(message).strip() == "<p>html</p>"
    assert starttls_server.deliveries[0].encrypted


async def test_plain_text_when_tls_is_off(
    trusted: None, starttls_server: CapturingSmtpServer
) -> None:
    await mailer(starttls_server.port, enable_tls=False).send("a@example.org", "Hi", "body")
    assert starttls_server.deliveries == [starttls_server.deliveries[0]]
    assert not starttls_server.deliveries[0].encrypted


async def test_required_transport_security_refuses_a_server_without_starttls(
    trusted: None, plain_server: CapturingSmtpServer
) -> None:
    with pytest.raises(MailNotSent):
        await mailer(plain_server.port, require_transport_security=True).send(
            "a@example.org", "Hi", "body"
        )
    assert plain_server.messages == []
    # without the requirement the same server gets the mail in the clear
    await mailer(plain_server.port).send("a@example.org", "Hi", "body")
    assert [d.encrypted for d in plain_server.deliveries] == [False]


async def test_an_untrusted_certificate_is_refused(
    starttls_server: CapturingSmtpServer,
) -> None:
    # no `trusted`: the test CA is not among the system's
    with pytest.raises(MailNotSent):
        await mailer(starttls_server.port).send("a@example.org", "Hi", "body")
    assert starttls_server.messages == []


async def test_force_tls_speaks_tls_from_the_start(trusted: None, ca: trustme.CA) -> None:
    with CapturingSmtpServer(ssl_context=server_context(ca)) as server:
        await mailer(server.port, force_tls=True).send("a@example.org", "Hi", "body")
        assert [d.encrypted for d in server.deliveries] == [True]


async def test_smtp_user_and_pass_log_in(trusted: None, ca: trustme.CA) -> None:
    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        good = isinstance(data, LoginPassword) and data.password == b"s3cret"
        return AuthResult(success=good, auth_data=data)

    with CapturingSmtpServer(
        tls_context=server_context(ca), authenticator=authenticate, auth_required=True
    ) as server:
        await mailer(server.port, smtp_user="matrix", smtp_pass="s3cret").send(
            "a@example.org", "Hi", "body"
        )
        assert [(d.encrypted, d.login) for d in server.deliveries] == [(True, "matrix")]
