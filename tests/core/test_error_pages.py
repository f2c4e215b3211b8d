"""Error pages look like the rest of the app (they extend base.html) and say what to do; a 403 is
logged as one line, not as a traceback (#15: 24 tracebacks after a viewer clicked around)."""

import logging

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db
STYLESHEET = "/static/css/app.css"


def test_a_refused_page_is_styled_and_names_the_role(viewer_client):
    response = viewer_client.get(reverse("connections:create"))
    assert response.status_code == 403
    assert "403.html" in [template.name for template in response.templates]
    html = response.content.decode()
    assert STYLESHEET in html and 'class="topbar"' in html
    assert "Your role, viewer, does not allow this page" in html
    assert f'href="{reverse("home")}"' in html


def test_a_refused_page_is_logged_as_one_line_without_a_traceback(viewer_client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        viewer_client.get(reverse("connections:create"))
        viewer_client.get(reverse("audit_log"))
    forbidden = [r for r in caplog.records if r.name == "django.request"]
    assert [r.getMessage() for r in forbidden] == [
        f"Forbidden (Permission denied): {reverse('connections:create')}",
        f"Forbidden (Permission denied): {reverse('audit_log')}",
    ]
    assert all(record.exc_info is None and not record.exc_text for record in forbidden)
    assert "Traceback" not in caplog.text


def test_other_errors_keep_their_traceback():
    """Only 403s are trimmed: a 500's traceback is what finds its cause."""
    from core.log_filters import ForbiddenWithoutTraceback

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("django.request", logging.ERROR, "", 0, "x", (), exc_info)
    record.status_code = 500
    assert ForbiddenWithoutTraceback().filter(record)
    assert record.exc_info is exc_info


def test_a_missing_page_is_styled(viewer_client, outsider_client):
    for client in (viewer_client, outsider_client):
        response = client.get(reverse("syncs:sync_detail", args=[987654]))
        assert response.status_code == 404
        html = response.content.decode()
        assert STYLESHEET in html and "Not found" in html


def test_a_server_error_page_is_styled_without_a_request_context():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert STYLESHEET in html and "Something went wrong" in html


def test_a_refused_form_is_styled_and_says_what_to_do(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("logout"))
    assert response.status_code == 403
    html = response.content.decode()
    assert STYLESHEET in html and "This form has expired" in html
