"""Synapse's `user_consent`: a policy (terms, privacy notice) users are asked to accept, shown
at /_matrix/consent from the admin's templates, accepted at registration (the m.login.terms
stage) and, with `block_events_error`, required before a user may send events."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

# Synapse serves the policy in English only; the templates sit in a directory per language
POLICY_LANGUAGE = "en"


class Section(BaseModel):
    # as models.Section, which imports this module
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserConsentConfig(Section):
    # holds <language>/<version>.html (the policy, with its form) and <language>/success.html
    template_dir: str
    # the version users accept; changing it asks every user again
    version: str
    # the content of a server notice sent to users who have not accepted `version`, once per
    # version, when they sync; %(consent_uri)s in its strings becomes their consent link
    server_notice_content: dict[str, object] | None = None
    # guests are sent it too
    send_server_notice_to_guests: bool = False
    # when set, events are refused (M_CONSENT_NOT_GIVEN) until the user consents; the text
    # may hold %(consent_uri)s
    block_events_error: str | None = None
    # ask for consent in registration (the m.login.terms stage)
    require_at_registration: bool = False
    # the policy's name in the m.login.terms stage's parameters
    policy_name: str = "Privacy Policy"

    def policy_template(self, language: str = POLICY_LANGUAGE) -> Path:
        return Path(self.template_dir) / language / f"{self.version}.html"

    def success_template(self, language: str = POLICY_LANGUAGE) -> Path:
        return Path(self.template_dir) / language / "success.html"


def consent_problems(
    consent: UserConsentConfig | None,
    form_secret: str | None,
    public_baseurl: str | None,
    server_notices_enabled: bool,
) -> list[str]:
    """Start-up refusals: a consent setup whose pages could not be served or checked."""
    if consent is None:
        return []
    problems: list[str] = []
    if consent.server_notice_content is not None and not server_notices_enabled:
        problems.append(
            "user_consent.server_notice_content: the notice is sent as a server notice, which "
            "needs server_notices.system_mxid_localpart; set it, or remove "
            "server_notice_content"
        )
    if not form_secret:
        problems.append(
            "user_consent: the consent form is signed with form_secret; set form_secret (or "
            "form_secret_path) to a long random string"
        )
    if public_baseurl is None:
        problems.append(
            "user_consent: the link to the policy is built from public_baseurl; set it to the "
            "URL clients reach this server at"
        )
    directory = Path(consent.template_dir)
    if not directory.is_dir():
        problems.append(
            f"user_consent.template_dir: {consent.template_dir!r} is not a directory; it must "
            f"hold {POLICY_LANGUAGE}/<version>.html and {POLICY_LANGUAGE}/success.html"
        )
    else:
        for template in (consent.policy_template(), consent.success_template()):
            if not template.is_file():
                problems.append(
                    f"user_consent.template_dir: {str(template)!r} is missing; the policy of "
                    f"version {consent.version!r} and the page shown after consent are read "
                    "from there"
                )
    return problems
