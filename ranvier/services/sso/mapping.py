"""From a provider's claims to a Matrix user: the subject that identifies them for good, and
the localpart and display name an admin's Jinja2 templates make of the claims (Synapse's
JinjaOidcMappingProvider, `user` being the claims), and the attribute requirements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.sandbox

from ranvier.config.oidc import AttributeRequirement, UserMappingConfig


class MappingError(Exception):
    """The claims cannot be made into a user; the message says why."""


def localpart_from_email(value: Any) -> Any:
    """The part of an email address before the @, for localpart templates."""
    return value.rsplit("@", 1)[0] if isinstance(value, str) else value


def _environment() -> jinja2.sandbox.SandboxedEnvironment:
    # claims come from elsewhere: sandboxed, and a missing claim renders as empty
    environment = jinja2.sandbox.SandboxedEnvironment(autoescape=False)
    environment.filters["localpart_from_email"] = localpart_from_email
    return environment


@dataclass(frozen=True)
class MappedUser:
    subject: str
    # None: the user picks one (no template, or it rendered empty)
    localpart: str | None
    display_name: str | None
    # ask the user to confirm (or change) `localpart`
    confirm_localpart: bool
    # the address email_template made, bound to a new account as an address it holds
    email: str | None = None


class UserMapper:
    def __init__(self, config: UserMappingConfig) -> None:
        self._config = config
        environment = _environment()

        def compile_template(source: str | None) -> jinja2.Template | None:
            return None if source is None else environment.from_string(source)

        self._subject = compile_template(config.subject_template)
        self._localpart = compile_template(config.localpart_template)
        self._display_name = compile_template(config.display_name_template)
        self._email = compile_template(config.email_template)

    def subject(self, claims: dict[str, Any]) -> str:
        if self._subject is not None:
            subject = self._render(self._subject, claims)
        else:
            value = claims.get(self._config.subject_claim)
            subject = None if value is None else str(value)
        if not subject:
            raise MappingError(
                f"The provider sent no {self._config.subject_claim!r} claim to identify you by"
            )
        return subject

    def map(self, claims: dict[str, Any]) -> MappedUser:
        localpart = self._render(self._localpart, claims) if self._localpart else None
        display_name = self._render(self._display_name, claims) if self._display_name else None
        return MappedUser(
            subject=self.subject(claims),
            # user IDs are lower case (as Synapse registers them)
            localpart=localpart.lower() if localpart else None,
            display_name=display_name or None,
            confirm_localpart=self._config.confirm_localpart,
            email=self._render(self._email, claims) if self._email else None,
        )

    @staticmethod
    def _render(template: jinja2.Template, claims: dict[str, Any]) -> str | None:
        try:
            return template.render(user=claims).strip() or None
        except jinja2.TemplateError as exc:
            raise MappingError(
                f"Could not apply a mapping template to your details: {exc}"
            ) from exc


def meets_requirements(claims: dict[str, Any], requirements: list[AttributeRequirement]) -> bool:
    """Every requirement holds: the claim equals an allowed value, or, being a list,
    contains one."""
    for requirement in requirements:
        value = claims.get(requirement.attribute)
        values = value if isinstance(value, list) else [value]
        if not any(isinstance(v, str) and v in requirement.allowed() for v in values):
            return False
    return True
