"""Every page links an icon, and /favicon.ico answers (it was a 404 on every page, #15)."""

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_every_page_links_the_icon(client, viewer_client):
    for response in (client.get(reverse("login")), viewer_client.get(reverse("home"))):
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in (
            response.content.decode()
        )


def test_favicon_ico_leads_to_the_icon_without_a_login(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"
    assert "max-age=86400" in response["Cache-Control"]
    icon = finders.find("favicon.svg")
    assert icon and Path(icon).read_text().startswith("<svg ")
