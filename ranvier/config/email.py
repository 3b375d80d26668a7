"""Synapse's `email` section: the SMTP server Ranvier sends through, who mail comes from, the
templates and subjects of the mails, and the settings of message notifications by email.

The section being present (and not empty) is what turns email on, as in Synapse: the server
can then verify email addresses (registration, password reset, adding an address), and
`notif_from` becomes required. The notification keys are read here and acted on by the email
pusher.
"""

from __future__ import annotations

import email.utils
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ranvier.config.units import parse_duration_ms


class Section(BaseModel):
    # as models.Section, which imports this module
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailSubjects(Section):
    """The subject of each kind of mail; `%(app)s` is `app_name`, `%(server_name)s` the
    server's name, `%(person)s` / `%(room)s` / `%(space)s` who and where (notifications)."""

    message_from_person_in_room: str = (
        "[%(app)s] You have a message on %(app)s from %(person)s in the %(room)s room..."
    )
    message_from_person: str = "[%(app)s] You have a message on %(app)s from %(person)s..."
    messages_from_person: str = "[%(app)s] You have messages on %(app)s from %(person)s..."
    messages_in_room: str = "[%(app)s] You have messages on %(app)s in the %(room)s room..."
    messages_in_room_and_others: str = (
        "[%(app)s] You have messages on %(app)s in the %(room)s room and others..."
    )
    messages_from_person_and_others: str = (
        "[%(app)s] You have messages on %(app)s from %(person)s and others..."
    )
    invite_from_person: str = "[%(app)s] %(person)s has invited you to chat on %(app)s..."
    invite_from_person_to_room: str = (
        "[%(app)s] %(person)s has invited you to join the %(room)s room on %(app)s..."
    )
    invite_from_person_to_space: str = (
        "[%(app)s] %(person)s has invited you to join the %(space)s space on %(app)s..."
    )
    password_reset: str = "[%(server_name)s] Password reset"
    email_validation: str = "[%(server_name)s] Validate your email"


class EmailConfig(Section):
    smtp_host: str = "localhost"
    # None: 465 with force_tls (implicit TLS), else 25
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_pass: str | None = None
    # TLS from the first byte (SMTPS); otherwise STARTTLS when the server offers it
    force_tls: bool = False
    # refuse to send unless STARTTLS succeeded
    require_transport_security: bool = False
    # off: never STARTTLS, even when offered
    enable_tls: bool = True
    # the name the server's certificate must carry (default: smtp_host)
    tlsname: str | None = None
    # the From of every mail; `%(app)s` is replaced by app_name
    notif_from: str | None = None
    app_name: str = "Matrix"
    # read here, acted on by the email pusher (notifications of unread messages)
    enable_notifs: bool = False
    notif_for_new_users: bool = True
    notif_delay_before_mail: int = parse_duration_ms("10m")
    client_base_url: str | None = None
    # Synapse's older name of client_base_url
    riot_base_url: str | None = None
    notif_template_html: str = "notif_mail.html"
    notif_template_text: str = "notif_mail.txt"
    # how long a link in a validation mail works
    validation_token_lifetime: int = parse_duration_ms("1h")
    invite_client_location: str | None = None
    # deprecated in Synapse for templates.custom_template_directory, which is searched first
    template_dir: str | None = None
    subjects: EmailSubjects = Field(default_factory=EmailSubjects)
    # the templates, by Synapse's option names and default file names
    password_reset_template_html: str = "password_reset.html"
    password_reset_template_text: str = "password_reset.txt"
    registration_template_html: str = "registration.html"
    registration_template_text: str = "registration.txt"
    add_threepid_template_html: str = "add_threepid.html"
    add_threepid_template_text: str = "add_threepid.txt"
    password_reset_template_failure_html: str = "password_reset_failure.html"
    registration_template_failure_html: str = "registration_failure.html"
    add_threepid_template_failure_html: str = "add_threepid_failure.html"
    password_reset_template_success_html: str = "password_reset_success.html"
    registration_template_success_html: str = "registration_success.html"
    add_threepid_template_success_html: str = "add_threepid_success.html"

    @field_validator("notif_delay_before_mail", "validation_token_lifetime", mode="before")
    @classmethod
    def _duration(cls, value: int | str) -> int:
        return parse_duration_ms(value)

    @field_validator("subjects", mode="before")
    @classmethod
    def _no_subjects(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("invite_client_location")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http or https URL")
        return value or None

    @model_validator(mode="after")
    def _consistent(self) -> EmailConfig:
        if self.notif_from is None:
            raise ValueError(
                "notif_from is required once the email section is used: the From of the "
                "mails, e.g. 'Your Friendly %(app)s homeserver <noreply@example.com>'"
            )
        try:
            sender = self.notif_from % {"app": self.app_name}
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(
                f"notif_from: {self.notif_from!r} may only use %(app)s as a placeholder "
                f"(write %% for a percent sign): {exc}"
            ) from None
        if "@" not in email.utils.parseaddr(sender)[1]:
            raise ValueError(f"notif_from: {self.notif_from!r} holds no email address")
        if self.force_tls and not self.enable_tls:
            raise ValueError("force_tls requires enable_tls to be true")
        if self.require_transport_security and not self.enable_tls:
            raise ValueError("require_transport_security requires enable_tls to be true")
        if self.smtp_pass is not None and self.smtp_user is None:
            raise ValueError("smtp_pass is set without smtp_user")
        return self

    def template_names(self) -> dict[str, str]:
        """Each template option and the file it names."""
        return {
            name: value
            for name, value in self.model_dump().items()
            if name.endswith(("_template_html", "_template_text"))
        }

    @property
    def port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return 465 if self.force_tls else 25

    @property
    def sender(self) -> str:
        """The From header: notif_from with the app name put in."""
        assert self.notif_from is not None
        return self.notif_from % {"app": self.app_name}

    @property
    def base_url_of_client(self) -> str | None:
        return self.client_base_url or self.riot_base_url
