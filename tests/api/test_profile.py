"""The profile page: people list, create (shown once) and revoke their own API tokens."""

import pytest

from api.models import ApiToken
from api.tokens import create_api_token
from core.models import AuditEntry
from tests.api.helpers import ApiClient, queries_of

pytestmark = pytest.mark.django_db

PROFILE = "/accounts/profile/"


def test_login_is_required(client):
    response = client.get(PROFILE)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_an_outsider_gets_404(outsider_client):
    assert outsider_client.get(PROFILE).status_code == 404
    assert outsider_client.post(PROFILE, {"name": "x"}).status_code == 404
    assert not ApiToken.objects.exists()


def test_a_viewer_creates_a_token_shown_once_that_reads_the_api(viewer_client, viewer):
    response = viewer_client.post(PROFILE, {"name": "dashboard export"})
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    token = ApiToken.objects.get(user=viewer)
    raw = response.context["raw_token"]
    assert raw.startswith(token.prefix + "_")
    assert raw in response.content.decode()
    assert ApiClient(raw).get("/syncs").status_code == 200
    assert ApiClient(raw).post("/syncs", {}).status_code == 403
    again = viewer_client.get(PROFILE).content.decode()
    assert token.prefix in again
    assert raw not in again


def test_a_blank_name_is_refused_and_creates_nothing(marketer_client):
    response = marketer_client.post(PROFILE, {"name": "  "})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert response.context["raw_token"] is None
    assert not ApiToken.objects.exists()


def test_the_list_shows_only_the_users_own_tokens(marketer_client, marketer, viewer):
    mine, _ = create_api_token(user=marketer, name="mine", actor=None)
    theirs, _ = create_api_token(user=viewer, name="theirs", actor=None)
    page = marketer_client.get(PROFILE).content.decode()
    assert mine.prefix in page
    assert theirs.prefix not in page


def test_a_user_revokes_their_token_and_it_is_refused_at_once(marketer_client, marketer):
    token, raw = create_api_token(user=marketer, name="t", actor=None)
    response = marketer_client.post(f"{PROFILE}tokens/{token.pk}/revoke")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiClient(raw).get("/syncs").status_code == 401
    entry = AuditEntry.objects.get(action="api_token.revoked")
    assert entry.actor == marketer


def test_nobody_revokes_another_persons_token(viewer_client, admin_user):
    token, raw = create_api_token(user=admin_user, name="t", actor=None)
    assert viewer_client.post(f"{PROFILE}tokens/{token.pk}/revoke").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert ApiClient(raw).get("/syncs").status_code == 200


def test_revoke_takes_post_only_and_refuses_outsiders(marketer_client, outsider_client, marketer):
    token, _ = create_api_token(user=marketer, name="t", actor=None)
    assert marketer_client.get(f"{PROFILE}tokens/{token.pk}/revoke").status_code == 405
    assert outsider_client.post(f"{PROFILE}tokens/{token.pk}/revoke").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_revoking_a_revoked_token_says_so(marketer_client, marketer):
    token, _ = create_api_token(user=marketer, name="t", actor=None)
    marketer_client.post(f"{PROFILE}tokens/{token.pk}/revoke")
    response = marketer_client.post(f"{PROFILE}tokens/{token.pk}/revoke", follow=True)
    assert "already revoked" in response.content.decode()
    assert AuditEntry.objects.filter(action="api_token.revoked").count() == 1


def test_the_profile_page_costs_the_same_queries_for_one_token_or_many(
    marketer_client, marketer, django_assert_num_queries
):
    create_api_token(user=marketer, name="t0", actor=None)
    one = queries_of(lambda: marketer_client.get(PROFILE))
    for n in range(1, 8):
        create_api_token(user=marketer, name=f"t{n}", actor=None)
    with django_assert_num_queries(one):
        marketer_client.get(PROFILE)
