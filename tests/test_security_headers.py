"""Security issue #13, finding 8: every page carries a Content-Security-Policy that allows
scripts, styles and everything else from this server only, and the templates hold nothing that
such a policy would block (inline scripts, style elements or attributes, event handlers)."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def policy(response):
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (directive.split() for directive in header.split(";") if directive)
    }


@pytest.mark.parametrize("path", ["/", "/syncs/", "/cohorts/", "/audit/", "/api/v1/docs"])
def test_pages_allow_only_this_servers_scripts_and_styles(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 200
    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header


def test_the_login_page_and_api_answers_carry_it_too(client):
    assert "script-src 'self'" in client.get(reverse("login"))["Content-Security-Policy"]
    assert "default-src 'self'" in client.get("/api/v1/syncs")["Content-Security-Policy"]


def template_files():
    return sorted(TEMPLATES.rglob("*.html"))


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"javascript:", re.IGNORECASE)
HTMX_EVAL = re.compile(r"\bhx-on|hx-vals\s*=\s*['\"]\s*js:|hx-vars", re.IGNORECASE)


@pytest.mark.parametrize("path", template_files(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_holds_what_the_policy_blocks(path):
    html = path.read_text()
    for name, pattern in [
        ("inline <script>", INLINE_SCRIPT),
        ("<style> element", STYLE_ELEMENT),
        ("style attribute", STYLE_ATTRIBUTE),
        ("on* event handler", EVENT_HANDLER),
        ("javascript: URL", JS_URL),
        ("htmx attribute that evaluates script", HTMX_EVAL),
    ]:
        assert not pattern.search(html), f"{path.name} has an {name}"


def test_htmx_adds_no_style_element_and_evaluates_nothing():
    base = (TEMPLATES / "base.html").read_text()
    assert '"includeIndicatorStyles": false' in base
    assert '"allowEval": false' in base
