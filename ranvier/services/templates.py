"""The HTML and plain-text templates of the pages and mails Ranvier makes (single sign-on pages,
user-interactive auth fallbacks, consent, email), by Synapse's template names so that an admin's
customised templates carry over.

A template in the admin's directory (`templates.custom_template_directory`, or a section's own
older option such as `email.template_dir`) replaces Ranvier's of the same name; any template it
lacks falls back to Ranvier's own in `ranvier/templates/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "templates"


class Templates:
    def __init__(self, *custom_directories: str | None) -> None:
        searched = [directory for directory in custom_directories if directory]
        self._environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*searched, str(DEFAULT_DIRECTORY)]),
            # HTML is escaped; mail text and subjects are not markup
            autoescape=jinja2.select_autoescape(["html", "htm", "xml"]),
            undefined=jinja2.StrictUndefined,
        )

    def render(self, template: str, /, **context: Any) -> str:
        """The template filled in; a variable the template uses and `context` lacks raises."""
        return self._environment.get_template(template).render(**context)

    def exists(self, name: str) -> bool:
        try:
            self._environment.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        return True
