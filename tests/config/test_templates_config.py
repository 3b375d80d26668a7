"""`templates.custom_template_directory`: resolved against the config file, refused at start-up
when missing, and its templates replacing Ranvier's own of the same name."""

from __future__ import annotations

from pathlib import Path

from ranvier.config import load_config
from ranvier.services.templates import Templates
from tests.config.files import refusal, write_config


def test_a_relative_directory_is_found_beside_the_config_file(generated: Path) -> None:
    (generated.parent / "my_templates").mkdir()
    config = load_config(
        write_config(generated, templates={"custom_template_directory": "my_templates"})
    )
    assert config.templates.custom_template_directory == str(generated.parent / "my_templates")


def test_a_missing_directory_refuses_start_up_naming_it(generated: Path) -> None:
    message = refusal(
        write_config(generated, templates={"custom_template_directory": "/nonexistent/tpl"})
    )
    assert "templates.custom_template_directory" in message
    assert "/nonexistent/tpl" in message


def test_the_first_directory_holding_a_template_wins_and_html_is_escaped(tmp_path: Path) -> None:
    custom, fallback = tmp_path / "custom", tmp_path / "fallback"
    custom.mkdir()
    fallback.mkdir()
    (custom / "page.html").write_text("<p>{{ name }} (custom)</p>")
    (fallback / "page.html").write_text("<p>{{ name }} (fallback)</p>")
    (fallback / "mail.txt").write_text("Hello {{ name }}")
    templates = Templates(str(custom), str(fallback))
    assert templates.render("page.html", name="<b>") == "<p>&lt;b&gt; (custom)</p>"
    assert templates.render("mail.txt", name="<b>") == "Hello <b>"
    assert templates.exists("mail.txt") and not templates.exists("absent.html")
