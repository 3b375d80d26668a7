"""Mail out through the SMTP server of the `email` section, with aiosmtplib.

Transport security follows Synapse's keys: `force_tls` speaks TLS from the first byte (SMTPS,
port 465); otherwise STARTTLS is used when the server offers it and `enable_tls` is on, and
`require_transport_security` refuses to send over a connection that could not be upgraded.
Certificates are checked against the system's CAs, for `tlsname` when set, else `smtp_host`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from ranvier.config.email import EmailConfig

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0


class MailNotSent(Exception):
    """The SMTP server could not be reached, or refused the mail."""


class Mailer:
    def __init__(self, config: EmailConfig, server_name: str) -> None:
        self._config = config
        self._server_name = server_name

    @property
    def app_name(self) -> str:
        return self._config.app_name

    def compose(self, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._config.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(uuid.uuid4().hex, domain=self._server_name)
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """Send one mail (multipart text and HTML when `html` is given); raises MailNotSent."""
        await self.send_message(self.compose(to, subject, text, html))

    async def send_message(self, message: EmailMessage) -> None:
        config = self._config
        # STARTTLS: None lets aiosmtplib upgrade when offered, True insists, False never does
        start_tls: bool | None
        if config.force_tls or not config.enable_tls:
            start_tls = False
        elif config.require_transport_security:
            start_tls = True
        else:
            start_tls = None
        try:
            sock = None
            hostname = config.smtp_host
            port: int | None = config.port
            if config.tlsname is not None and config.enable_tls:
                # connect to smtp_host but check the certificate for tlsname
                sock = await asyncio.to_thread(
                    socket.create_connection, (config.smtp_host, config.port), SMTP_TIMEOUT
                )
                hostname, port = config.tlsname, None
            client = aiosmtplib.SMTP(
                hostname=hostname,
                port=port,
                sock=sock,
                username=config.smtp_user,
                password=config.smtp_pass,
                use_tls=config.force_tls,
                start_tls=start_tls,
                tls_context=ssl.create_default_context() if config.enable_tls else None,
                timeout=SMTP_TIMEOUT,
            )
            async with client:
                await client.send_message(message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            logger.warning("mail to %s not sent: %s", message["To"], exc)
            raise MailNotSent(str(exc)) from exc
