import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort, CohortMember, CohortSizeSample, CsvUpload, ImportRequest
from connections.models import ImportKey
from core.models import AuditEntry
from syncs.models import Sync
from tests.base import make_connection
from tests.factories import make_cohort

pytestmark = pytest.mark.django_db


def flashes(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _urls(pk):
    return {
        "list": ("get", reverse("cohorts:cohort_list")),
        "detail": ("get", reverse("cohorts:cohort_detail", args=[pk])),
        "members": ("get", reverse("cohorts:cohort_members", args=[pk]) + "?q=user"),
        "create": ("get", reverse("cohorts:cohort_create")),
        "edit": ("get", reverse("cohorts:cohort_edit", args=[pk])),
        "delete": ("get", reverse("cohorts:cohort_delete", args=[pk])),
        "change": ("get", reverse("cohorts:cohort_change_members", args=[pk])),
        "create_post": ("post", reverse("cohorts:cohort_create")),
        "edit_post": ("post", reverse("cohorts:cohort_edit", args=[pk])),
        "delete_post": ("post", reverse("cohorts:cohort_delete", args=[pk])),
        "change_post": ("post", reverse("cohorts:cohort_change_members", args=[pk])),
    }


READ = {"list", "detail", "members"}


# Access


def test_every_cohort_page_requires_login(client):
    pk = make_cohort().pk
    for name, (method, url) in _urls(pk).items():
        response = getattr(client, method)(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name


def test_outsiders_get_404_on_every_cohort_page(outsider_client):
    pk = make_cohort().pk
    for name, (method, url) in _urls(pk).items():
        assert getattr(outsider_client, method)(url).status_code == 404, name


def test_viewers_read_cohorts_but_cannot_change_them(viewer_client):
    cohort = make_cohort(members=3)
    for name, (method, url) in _urls(cohort.pk).items():
        expected = 200 if name in READ else 403
        assert getattr(viewer_client, method)(url).status_code == expected, name
    viewer_client.post(
        reverse("cohorts:cohort_change_members", args=[cohort.pk]),
        {"id_type": "external_id", "text": "intruder", "action": "add"},
    )
    assert Cohort.objects.get().member_count == 3
    assert not AuditEntry.objects.filter(action__startswith="cohort.").exists()


def test_viewers_see_no_buttons_that_change_a_cohort(viewer_client):
    cohort = make_cohort()
    html = viewer_client.get(reverse("cohorts:cohort_detail", args=[cohort.pk])).content.decode()
    for label in ("Upload CSV", "Add or remove members", "Rename", ">Delete<"):
        assert label not in html
    assert "New cohort" not in viewer_client.get(reverse("cohorts:cohort_list")).content.decode()


@pytest.mark.parametrize("client_fixture", ["marketer_client", "admin_client"])
def test_marketers_and_admins_reach_every_cohort_page(request, client_fixture):
    client = request.getfixturevalue(client_fixture)
    pk = make_cohort().pk
    for name, (method, url) in _urls(pk).items():
        if method == "get":
            assert client.get(url).status_code == 200, name


# List


def test_the_list_shows_source_size_last_change_and_the_syncs_using_each_cohort(viewer_client):
    cohort = make_cohort(name="Lapsed buyers", members=1234)
    make_cohort(
        name="AF installs", source="partner", partner="appsflyer", partner_cohort_id="af-cohort-77"
    )
    make_cohort(name="From a file", source="csv")
    connection = make_connection()
    Sync.objects.create(name="Braze lapsed", cohort=cohort, connection=connection)
    Sync.objects.create(name="AF lapsed", cohort=cohort, connection=connection)
    html = viewer_client.get(reverse("cohorts:cohort_list")).content.decode()
    assert "1,234" in html
    assert "AppsFlyer" in html and "af-cohort-77" in html
    assert "CSV upload" in html and "Manual" in html
    assert "2: AF lapsed, Braze lapsed" in html
    assert "minutes ago" in html


def test_the_list_costs_the_same_queries_for_3_and_30_cohorts(viewer_client):
    connection = make_connection()

    def queries_for_list():
        with CaptureQueriesContext(db) as captured:
            assert viewer_client.get(reverse("cohorts:cohort_list")).status_code == 200
        return len(captured)

    def add_cohorts(count):
        for n in range(count):
            cohort = make_cohort(name=f"Cohort {Cohort.objects.count():03d}")
            Sync.objects.create(name=f"Sync {n}", cohort=cohort, connection=connection)

    add_cohorts(3)
    viewer_client.get(reverse("cohorts:cohort_list"))  # session and role caches warm
    few = queries_for_list()
    add_cohorts(27)
    many = queries_for_list()
    assert few == many
    html = viewer_client.get(reverse("cohorts:cohort_list")).content.decode()
    assert html.count('href="/cohorts/') >= 30


def test_the_list_is_searched_by_name_and_paginated_by_50(viewer_client):
    for n in range(55):
        make_cohort(name=f"Winback {n:02d}")
    make_cohort(name="Churn risk")
    url = reverse("cohorts:cohort_list")
    response = viewer_client.get(url, {"q": "winback"})
    assert len(response.context["page"].object_list) == 50
    assert "Churn risk" not in response.content.decode()
    second = viewer_client.get(url, {"q": "winback", "page": 2})
    assert [c.name for c in second.context["page"].object_list] == [
        f"Winback {n}" for n in range(50, 55)
    ]
    assert "q=winback&amp;page=1" in second.content.decode()


# Create, rename, delete


def test_a_marketer_creates_a_cohort_and_lands_on_it(marketer_client, marketer):
    response = marketer_client.post(reverse("cohorts:cohort_create"), {"name": "  VIP users "})
    cohort = Cohort.objects.get()
    assert response["Location"] == reverse("cohorts:cohort_detail", args=[cohort.pk])
    assert (cohort.name, cohort.source, cohort.created_by) == ("VIP users", "manual", marketer)
    assert AuditEntry.objects.get(action="cohort.created").ip == "127.0.0.1"


def test_a_blank_name_is_shown_back_as_an_error(marketer_client):
    response = marketer_client.post(reverse("cohorts:cohort_create"), {"name": "   "})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Cohort.objects.exists()


def test_a_manual_cohort_is_renamed(marketer_client):
    cohort = make_cohort()
    response = marketer_client.post(
        reverse("cohorts:cohort_edit", args=[cohort.pk]), {"name": "Churn risk EU"}
    )
    assert response.status_code == 302
    cohort.refresh_from_db()
    assert cohort.name == "Churn risk EU"


def test_a_partner_cohort_offers_no_rename_and_refuses_one(marketer_client):
    cohort = make_cohort(
        name="AF buyers", source="partner", partner="appsflyer", partner_cohort_id="9"
    )
    detail = marketer_client.get(reverse("cohorts:cohort_detail", args=[cohort.pk]))
    assert reverse("cohorts:cohort_edit", args=[cohort.pk]) not in detail.content.decode()
    response = marketer_client.post(
        reverse("cohorts:cohort_edit", args=[cohort.pk]), {"name": "Mine"}
    )
    assert response.status_code == 200
    assert "named by its partner (AppsFlyer)" in response.content.decode()
    cohort.refresh_from_db()
    assert cohort.name == "AF buyers"


def test_a_cohort_no_sync_uses_is_deleted_after_confirmation(marketer_client):
    cohort = make_cohort(members=3)
    page = marketer_client.get(reverse("cohorts:cohort_delete", args=[cohort.pk]))
    assert "Delete cohort" in page.content.decode()
    response = marketer_client.post(reverse("cohorts:cohort_delete", args=[cohort.pk]))
    assert response["Location"] == reverse("cohorts:cohort_list")
    assert not Cohort.objects.exists()
    assert not CohortMember.objects.exists()
    assert AuditEntry.objects.filter(action="cohort.deleted").count() == 1


def test_deleting_a_cohort_that_syncs_use_is_refused_and_names_them(marketer_client):
    cohort = make_cohort()
    connection = make_connection(name="Braze US")
    Sync.objects.create(name="Braze churn", cohort=cohort, connection=connection)
    Sync.objects.create(name="Weekly churn", cohort=cohort, connection=connection)
    url = reverse("cohorts:cohort_delete", args=[cohort.pk])
    page = marketer_client.get(url).content.decode()
    assert "cannot be deleted" in page
    assert "Braze churn" in page and "Weekly churn" in page and "Braze US" in page
    assert "Delete cohort" not in page
    response = marketer_client.post(url)
    assert response.status_code == 200
    [message] = flashes(response)
    assert "2 syncs use it (Braze churn, Weekly churn)" in message
    assert "2 syncs use it (Braze churn, Weekly churn)" in response.content.decode()
    assert Cohort.objects.filter(pk=cohort.pk).exists()


# Changing members


def change(client, cohort, text, action="add", **fields):
    data = {"id_type": "external_id", "alias_label": "", "text": text, "action": action}
    return client.post(
        reverse("cohorts:cohort_change_members", args=[cohort.pk]), {**data, **fields}
    )


def test_pasted_members_are_added_and_the_counts_flashed(marketer_client):
    cohort = make_cohort()
    apply_changes(cohort.pk, add=[Identity("external_id", "old")])
    response = change(marketer_client, cohort, "old\nnew-1, new-2")
    assert response["Location"] == reverse("cohorts:cohort_detail", args=[cohort.pk])
    assert flashes(response) == ["Added 2, 1 was already a member."]
    cohort.refresh_from_db()
    assert cohort.member_count == 3


def test_pasted_members_are_removed_with_the_remove_button(marketer_client):
    cohort = make_cohort(members=5)
    response = change(marketer_client, cohort, "user-0 user-1 ghost-1 ghost-2", action="remove")
    assert flashes(response) == ["Removed 2, 2 were not members."]
    cohort.refresh_from_db()
    assert cohort.member_count == 3


def test_user_aliases_are_added_with_their_label(admin_client):
    cohort = make_cohort()
    change(admin_client, cohort, "a-1\na-2", id_type="user_alias", alias_label="crm")
    assert set(CohortMember.objects.values_list("alias_label", "value")) == {
        ("crm", "a-1"),
        ("crm", "a-2"),
    }


def test_bad_input_is_shown_back_with_its_line_and_changes_nothing(marketer_client):
    cohort = make_cohort()
    response = change(marketer_client, cohort, "fine\n\n" + "x" * 300)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Line 3: " in html and "longer than 255 characters" in html
    assert "fine" in html  # the paste is kept for fixing
    missing_label = change(marketer_client, cohort, "a-1", id_type="user_alias")
    assert "User aliases need their alias label." in missing_label.content.decode()
    assert not CohortMember.objects.exists()


# Detail


def test_the_detail_page_shows_imports_uploads_and_syncs(viewer_client):
    cohort = make_cohort(
        name="AF buyers", source="partner", partner="appsflyer", partner_cohort_id="7"
    )
    key = ImportKey.objects.create(
        name="AF prod", partner="appsflyer", prefix="cs_live_ab12", key_hash="0" * 64
    )
    ImportRequest.objects.create(
        key=key,
        partner="appsflyer",
        endpoint="cohorts/users",
        cohort=cohort,
        added=1500,
        removed=2,
        ignored=3,
        status=ImportRequest.Status.APPLIED,
        http_status=201,
    )
    ImportRequest.objects.create(
        partner="appsflyer",
        endpoint="cohorts/users",
        cohort=cohort,
        status=ImportRequest.Status.REJECTED,
        http_status=400,
        error="user_ids must be a list",
    )
    upload = CsvUpload.objects.create(
        cohort=cohort, mode="add", file_name="buyers.csv", status="succeeded", added=42
    )
    Sync.objects.create(name="Braze buyers", cohort=cohort, connection=make_connection())
    html = viewer_client.get(reverse("cohorts:cohort_detail", args=[cohort.pk])).content.decode()
    assert "cs_live_ab12…" in html and "1,500" in html
    assert "user_ids must be a list" in html
    assert f"{reverse('cohorts:import_requests')}?cohort={cohort.pk}" in html
    assert reverse("cohorts:upload_detail", args=[cohort.pk, upload.pk]) in html
    assert "buyers.csv" in html
    assert "Braze buyers" in html
    assert "No sync uses this cohort yet" not in html


def test_a_cohort_without_syncs_says_so(viewer_client):
    cohort = make_cohort()
    html = viewer_client.get(reverse("cohorts:cohort_detail", args=[cohort.pk])).content.decode()
    assert "No sync uses this cohort yet" in html


def test_the_size_chart_is_an_svg_path_once_there_are_two_samples(viewer_client):
    cohort = make_cohort()
    url = reverse("cohorts:cohort_detail", args=[cohort.pk])
    now = timezone.now()
    CohortSizeSample.objects.create(cohort=cohort, at=now - timedelta(days=3), member_count=900)
    html = viewer_client.get(url).content.decode()
    assert "<svg" not in html
    assert "Not enough history to draw yet" in html
    CohortSizeSample.objects.create(cohort=cohort, at=now - timedelta(days=1), member_count=1200)
    html = viewer_client.get(url).content.decode()
    assert "<svg" in html
    assert re.search(r'<path class="line" d="M[\d.]+,[\d.]+H', html)
    assert "1,200" in html and "900" in html


def test_a_cohort_with_no_history_shows_the_empty_chart_state(viewer_client):
    cohort = make_cohort()
    html = viewer_client.get(reverse("cohorts:cohort_detail", args=[cohort.pk])).content.decode()
    assert "<svg" not in html
    assert "Not enough history to draw yet" in html


# Member search and paging


@pytest.fixture
def searchable():
    cohort = make_cohort(name="Devices")
    apply_changes(
        cohort.pk,
        add=[
            Identity("external_id", "alice-1", extras=(("gaid", "gaid-aaaa"),)),
            Identity("external_id", "alice-2"),
            Identity("device_id", "bob-device", extras=(("braze_id", "braze-bob"),)),
            Identity("user_alias", "carol", "crm"),
        ],
        update_extras=True,
    )
    return cohort


def found(client, cohort, q):
    response = client.get(reverse("cohorts:cohort_members", args=[cohort.pk]), {"q": q})
    assert response.status_code == 200
    return sorted(member.value for member, _ in response.context["members"])


def test_members_are_found_by_exact_value(viewer_client, searchable):
    assert found(viewer_client, searchable, "carol") == ["carol"]


def test_members_are_found_by_an_extra_identifier(viewer_client, searchable):
    assert found(viewer_client, searchable, "gaid-aaaa") == ["alice-1"]
    assert found(viewer_client, searchable, "braze-bob") == ["bob-device"]
    html = viewer_client.get(
        reverse("cohorts:cohort_members", args=[searchable.pk]), {"q": "gaid-aaaa"}
    ).content.decode()
    assert "gaid <code>gaid-aaaa</code>" in html


def test_members_are_found_by_the_start_of_their_value(viewer_client, searchable):
    assert found(viewer_client, searchable, "alice") == ["alice-1", "alice-2"]
    assert found(viewer_client, searchable, "gaid-a") == []  # extras match exactly only


def test_a_search_shorter_than_two_characters_is_refused(viewer_client, searchable):
    response = viewer_client.get(
        reverse("cohorts:cohort_members", args=[searchable.pk]), {"q": "a"}
    )
    assert response.context["members"] == []
    assert "at least 2 characters" in response.content.decode()


def test_members_of_another_cohort_are_never_found(viewer_client, searchable):
    other = make_cohort(name="Other")
    apply_changes(other.pk, add=[Identity("external_id", "alice-9")])
    assert found(viewer_client, searchable, "alice") == ["alice-1", "alice-2"]


def test_a_big_cohort_pages_by_id_with_no_duplicates_and_no_count(viewer_client):
    cohort = make_cohort(members=120)
    url = reverse("cohorts:cohort_members", args=[cohort.pk])
    seen, pages, params = [], 0, {}
    while True:
        with CaptureQueriesContext(db) as captured:
            response = viewer_client.get(url, params)
        pages += 1
        seen += [member.pk for member, _ in response.context["members"]]
        member_sql = [q["sql"] for q in captured if CohortMember._meta.db_table in q["sql"]]
        assert not [sql for sql in member_sql if "COUNT(" in sql.upper()]
        next_after = response.context["next_after"]
        if next_after is None:
            break
        assert f"after={next_after}" in response.content.decode()
        params = {"after": next_after}
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    assert seen == sorted(seen)


def test_a_search_pages_by_id_too(viewer_client):
    cohort = make_cohort(members=60)
    url = reverse("cohorts:cohort_members", args=[cohort.pk])
    first = viewer_client.get(url, {"q": "user-"})
    assert len(first.context["members"]) == 50
    second = viewer_client.get(url, {"q": "user-", "after": first.context["next_after"]})
    assert len(second.context["members"]) == 10
    assert second.context["next_after"] is None
    assert "q=user-" in second.content.decode()  # "First page" keeps the search


@pytest.mark.parametrize("after", ["-5", "²", "9" * 40, "abc"])
def test_a_malformed_page_cursor_starts_at_the_first_page(viewer_client, after):
    cohort = make_cohort(members=3)
    response = viewer_client.get(
        reverse("cohorts:cohort_members", args=[cohort.pk]), {"after": after}
    )
    assert response.status_code == 200
    assert len(response.context["members"]) == 3


def test_an_unfinished_latest_upload_shows_its_progress(viewer_client):
    cohort = make_cohort()
    url = reverse("cohorts:cohort_detail", args=[cohort.pk])
    CsvUpload.objects.create(cohort=cohort, mode="add", file_name="old.csv", status="succeeded")
    used = [t.name for t in viewer_client.get(url).templates]
    assert "cohorts/uploads/_progress.html" not in used
    CsvUpload.objects.create(cohort=cohort, mode="add", file_name="new.csv", status="running")
    used = [t.name for t in viewer_client.get(url).templates]
    assert "cohorts/uploads/_progress.html" in used
