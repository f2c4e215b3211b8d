"""Creating a sync step by step (cohort → destination → identifier → cadence → preview) and
editing one with the same preview: access, each step's checks, tampered answers, query counts."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from core.models import AuditEntry
from syncs.models import Sync
from tests.base import make_connection
from tests.factories import make_cohort, make_sync

pytestmark = pytest.mark.django_db

CREATE = reverse("syncs:sync_create")


def ext(value, **extras):
    return Identity("external_id", value, extras=tuple(extras.items()))


@pytest.fixture
def cohort():
    # 8 members: 5 with a GAID (62.5 %), 3 external ids, 1 device with nothing usable by Braze.
    return make_cohort(
        members=[
            ext("u1", gaid="g1"),
            ext("u2", gaid="g2"),
            ext("u3"),
            Identity("device_id", "d1", extras=(("gaid", "g3"),)),
            Identity("device_id", "d2", extras=(("gaid", "g4"),)),
            Identity("device_id", "d3", extras=(("gaid", "g5"),)),
            Identity("device_id", "d4", extras=(("idfv", "v1"),)),
            Identity("user_alias", "a1", "crm"),
        ]
    )


@pytest.fixture
def braze():
    return make_connection(name="Braze prod")


@pytest.fixture
def android():
    return make_connection("appsflyer", name="AF android")


def answers(cohort, connection, **changes):
    data = {
        "cohort": cohort.pk,
        "connection": connection.pk,
        "primary_identifier": "external_id",
        "fallback_identifier": "",
        "membership_mode": "",
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "50",
        "name": "Churn → Braze",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def step(client, name, data, url=CREATE):
    return client.get(url, {**data, "step": name})


def page(response):
    return response.content.decode()


def flashes(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def sync(cohort, braze):
    return make_sync(cohort=cohort, connection=braze)


# Access


def test_the_steps_require_login(client, sync):
    for url in (CREATE, reverse("syncs:sync_edit", args=[sync.pk])):
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login"))


def test_outsiders_get_404_and_viewers_403_and_nothing_is_written(
    outsider_client, viewer_client, sync, cohort, braze
):
    edit = reverse("syncs:sync_edit", args=[sync.pk])
    data = answers(cohort, braze, name="Sneaky")
    for client, status in ((outsider_client, 404), (viewer_client, 403)):
        assert client.get(CREATE).status_code == status
        assert step(client, "preview", data).status_code == status
        assert client.post(CREATE, data).status_code == status
        assert client.get(edit).status_code == status
        assert client.post(edit, data).status_code == status
    assert list(Sync.objects.values_list("name", flat=True)) == ["Churn → Braze"]
    assert not AuditEntry.objects.filter(action="sync.updated").exists()


def test_editing_a_sync_that_does_not_exist_is_404(marketer_client):
    assert marketer_client.get(reverse("syncs:sync_edit", args=[999999])).status_code == 404


def test_viewers_see_no_edit_button(viewer_client, marketer_client, sync):
    detail = reverse("syncs:sync_detail", args=[sync.pk])
    assert 'id="edit"' not in page(viewer_client.get(detail))
    assert reverse("syncs:sync_edit", args=[sync.pk]) in page(marketer_client.get(detail))


# Creating, step by step


def test_a_marketer_goes_through_every_step_and_creates_the_sync(
    marketer_client, marketer, cohort, braze
):
    first = marketer_client.get(CREATE)
    assert first.status_code == 200
    assert "Churn risk (8 members)" in page(first)
    data = {"cohort": cohort.pk}
    destination = step(marketer_client, "destination", data)
    assert 'data-step="destination"' in page(destination)
    assert "Braze prod (Braze)" in page(destination)
    data["connection"] = braze.pk
    identifier = step(marketer_client, "identifier", data)
    assert 'data-step="identifier"' in page(identifier)
    data.update(primary_identifier="external_id", fallback_identifier="", membership_mode="")
    cadence = step(marketer_client, "cadence", data)
    assert 'data-step="cadence"' in page(cadence)
    data.update(cadence="hourly", leaving_members="keep", mass_removal_threshold_pct="30")
    preview = step(marketer_client, "preview", data)
    assert 'data-step="preview"' in page(preview)
    assert preview.context["form"].initial["name"] == "Churn risk → Braze prod"
    # Every earlier answer rides along in hidden fields.
    for name, value in data.items():
        assert f'name="{name}" value="{value}"' in page(preview) or not value
    response = marketer_client.post(CREATE, {**data, "name": "Churn hourly"})
    sync = Sync.objects.get()
    assert response["Location"] == reverse("syncs:sync_detail", args=[sync.pk])
    assert (sync.name, sync.cohort, sync.connection) == ("Churn hourly", cohort, braze)
    assert sync.identifier_mapping == ["external_id"]
    assert sync.cadence == {"kind": "hourly"}
    assert (sync.leaving_members, sync.mass_removal_threshold_pct) == ("keep", 30)
    assert sync.options == {}
    assert sync.created_by == marketer
    assert AuditEntry.objects.get(action="sync.created").actor == marketer
    assert "created" in flashes(response)[0]


def test_the_identifier_step_shows_how_many_members_have_each_identifier(
    marketer_client, cohort, android
):
    response = step(marketer_client, "identifier", answers(cohort, android))
    options = {option.name: option for option in response.context["identifier_options"]}
    assert (options["gaid"].members, options["gaid"].percent_text) == (5, "62 %")
    assert (options["external_id"].members, options["external_id"].percent_text) == (3, "38 %")
    assert (options["idfv"].members, options["oaid"].members) == (1, 0)
    html = page(response)
    assert "62 %" in html
    # IDFV is an iOS identifier: disabled on an Android app, with the reason.
    assert options["idfv"].unavailable == "Not on an Android app: it identifies iOS devices."
    assert 'value="idfv" aria-label="Identify members by IDFV (iOS vendor ID)" disabled' in html
    assert "Not on an Android app: it identifies iOS devices." in html
    assert options["user_alias"].unavailable == "AppsFlyer does not take this identifier."
    # Nobody has an OAID: it stays available, with the warning.
    assert options["oaid"].unavailable is None
    assert "No member of this cohort has it" in html
    assert 'name="import_key"' in html
    assert 'name="membership_mode"' not in html


def test_the_identifier_step_offers_brazes_membership_mode_with_the_connection_default(
    marketer_client, cohort, braze
):
    html = page(step(marketer_client, "identifier", answers(cohort, braze)))
    assert "As the connection says: an array attribute listing the cohorts" in html
    for mode in ("array", "boolean", "both"):
        assert f'name="membership_mode" value="{mode}"' in html
    assert "Braze does not take this identifier." in html  # GAID and the other device ids
    assert 'name="import_key"' not in html


def test_the_cadence_step_offers_every_cadence(marketer_client, cohort, android):
    # No cadence depends on the cohort or the destination today: all four, none disabled.
    for connection in (android, make_connection(name="Braze")):
        response = step(marketer_client, "cadence", answers(cohort, connection))
        html = page(response)
        for value in ("once", "hourly", "daily", "realtime"):
            assert f'name="cadence" value="{value}"' in html
        assert "disabled" not in html


def test_back_keeps_every_answer(marketer_client, cohort, braze):
    data = answers(cohort, braze, cadence="daily", daily_time="09:30", timezone="Europe/Paris")
    back = step(marketer_client, "destination", data)
    html = page(back)
    assert 'data-step="destination"' in html
    assert f'<option value="{braze.pk}" selected>' in html
    assert 'name="daily_time" value="09:30"' in html
    assert 'name="timezone" value="Europe/Paris"' in html
    # The step list links back to the steps already answered, never forward.
    nav = back.context["nav"]
    assert nav[0][1] and nav[0][1].startswith(CREATE + "?step=cohort")
    assert [url for _, url, _ in nav[1:]] == [None] * 4


def test_the_preview_shows_the_first_runs_counts(marketer_client, cohort, braze):
    data = answers(cohort, braze, fallback_identifier="user_alias")
    response = step(marketer_client, "preview", data)
    preview = response.context["preview"]
    assert (preview.adds, preview.skipped, preview.removes, preview.requests) == (4, 4, 0, 1)
    html = page(response)
    assert '<dd class="adds">4</dd>' in html
    assert "3,000 requests per 3 s" in html
    assert "External ID → User alias" in html  # as Braze knows them: no other partner's names


def test_an_appsflyer_sync_gets_its_audience_made_on_the_first_run(
    marketer_client, cohort, android
):
    data = answers(cohort, android, primary_identifier="gaid", fallback_identifier="external_id")
    response = marketer_client.post(CREATE, data)
    assert response.status_code == 302
    sync = Sync.objects.get()
    assert sync.identifier_mapping == ["gaid", "external_id"]
    assert "import_key" not in sync.options and len(sync.options["audience_suffix"]) == 6


def test_an_appsflyer_sync_keeps_a_given_audience_key(marketer_client, cohort, android):
    data = answers(cohort, android, primary_identifier="gaid", import_key=" AUD-KEY-1 ")
    assert marketer_client.post(CREATE, data).status_code == 302
    assert Sync.objects.get().options == {"import_key": "AUD-KEY-1"}


def test_a_daily_sync_is_scheduled_in_its_time_zone(marketer_client, cohort, braze):
    data = answers(cohort, braze, cadence="daily", daily_time="09:30", timezone="Europe/Paris")
    assert marketer_client.post(CREATE, data).status_code == 302
    sync = Sync.objects.get()
    assert sync.cadence == {"kind": "daily", "time_of_day": "09:30", "timezone": "Europe/Paris"}
    assert sync.next_run_at is not None


# Each step's checks: the step with the problem is shown again, with the error


@pytest.mark.parametrize(
    ("target", "field", "value", "shown", "message"),
    [
        ("destination", "cohort", "", "cohort", "This field is required."),
        ("destination", "cohort", "999999", "cohort", "Select a valid choice."),
        ("identifier", "connection", "", "destination", "This field is required."),
        ("identifier", "connection", "abc", "destination", "Select a valid choice."),
        ("cadence", "primary_identifier", "", "identifier", "This field is required."),
        ("cadence", "primary_identifier", "idfa", "identifier", "Braze does not take"),
        ("cadence", "primary_identifier", "nonsense", "identifier", "Select a valid choice."),
        ("cadence", "primary_identifier", "gaid", "identifier", "Braze does not take"),
        ("cadence", "fallback_identifier", "external_id", "identifier", "different fallback"),
        ("cadence", "membership_mode", "sometimes", "identifier", "Select a valid choice."),
        ("preview", "cadence", "weekly", "cadence", "Select a valid choice."),
        ("preview", "cadence", "daily", "cadence", "needs its time of day"),
        ("preview", "timezone", "Mars/Base", "cadence", "Mars/Base"),
        ("preview", "leaving_members", "forget", "cadence", "Select a valid choice."),
        ("preview", "mass_removal_threshold_pct", "0", "cadence", "greater than or equal to 1"),
        ("preview", "mass_removal_threshold_pct", "101", "cadence", "less than or equal to 100"),
        ("preview", "mass_removal_threshold_pct", "half", "cadence", "Enter a whole number."),
    ],
)
def test_a_bad_answer_shows_its_step_with_the_error(
    marketer_client, cohort, braze, target, field, value, shown, message
):
    data = {**answers(cohort, braze), field: value}
    if field == "timezone":
        data.update(cadence="daily", daily_time="09:30")
    response = step(marketer_client, target, data)
    assert response.status_code == 200
    assert response.context["state"].step == shown
    assert message in page(response)
    # Posting the same answers (a tampered hidden field) lands there too and writes nothing.
    posted = marketer_client.post(CREATE, data)
    assert posted.context["state"].step == shown
    assert message in page(posted)
    assert not Sync.objects.exists()


def test_a_step_reports_all_its_errors_at_once(marketer_client, cohort, braze):
    """A daily cadence with no time, an unknown time zone and a threshold out of range: the
    cadence step names all three, not the time first and the zone on the next try (#15)."""
    data = answers(
        cohort,
        braze,
        cadence="daily",
        daily_time="",
        timezone="Mars/Base",
        mass_removal_threshold_pct="0",
    )
    response = step(marketer_client, "preview", data)
    assert response.context["state"].step == "cadence"
    errors = response.context["form"].errors
    assert set(errors) == {"daily_time", "timezone", "mass_removal_threshold_pct"}
    html = page(response)
    assert "needs its time of day" in html
    assert "unknown time zone" in html and "Mars/Base" in html
    assert "greater than or equal to 1" in html


def test_a_daily_time_that_is_not_a_time_is_one_error_not_two(marketer_client, cohort, braze):
    data = answers(cohort, braze, cadence="daily", daily_time="25:99", timezone="UTC")
    errors = step(marketer_client, "preview", data).context["form"].errors
    assert list(errors) == ["daily_time"]
    assert len(errors["daily_time"]) == 1


@pytest.mark.parametrize(("value", "message"), [("", "required"), ("x" * 256, "at most 255")])
def test_the_name_is_checked_on_the_last_step(marketer_client, cohort, braze, value, message):
    response = marketer_client.post(CREATE, answers(cohort, braze, name=value))
    assert response.context["state"].step == "preview"
    assert message in page(response)
    assert not Sync.objects.exists()


def test_a_tampered_identifier_for_the_platform_is_refused_with_the_reason(
    marketer_client, cohort, android
):
    response = marketer_client.post(CREATE, answers(cohort, android, primary_identifier="idfv"))
    assert response.context["state"].step == "identifier"
    assert "IDFV (iOS vendor ID) is not available: Not on an Android app" in page(response)
    assert not Sync.objects.exists()


def test_an_unknown_step_starts_at_the_beginning(marketer_client, cohort, braze):
    response = step(marketer_client, "launch", answers(cohort, braze))
    assert response.context["state"].step == "cohort"


def test_a_connection_with_a_broken_config_is_refused_on_its_step(marketer_client, cohort, braze):
    braze.config = {**braze.config, "membership_mode": "sometimes"}
    braze.save()
    response = step(marketer_client, "identifier", answers(cohort, braze))
    assert response.context["state"].step == "destination"
    assert "an admin must fix them" in page(response)


# Editing


def edit_url(sync):
    return reverse("syncs:sync_edit", args=[sync.pk])


def test_editing_starts_from_the_syncs_settings(marketer_client, sync):
    response = marketer_client.get(edit_url(sync))
    assert response.context["state"].step == "identifier"
    html = page(response)
    assert 'value="external_id" aria-label="Identify members by External ID' in html
    assert "checked" in html.split('value="external_id" aria-label="Identify')[1][:120]
    assert 'name="name" value="Churn → Braze"' in html
    assert "Cohort" not in [title for title, _, _ in response.context["nav"]]


def test_an_edit_is_previewed_then_saved_and_audited(marketer_client, marketer, sync):
    data = answers(
        sync.cohort,
        sync.connection,
        fallback_identifier="user_alias",
        membership_mode="boolean",
        cadence="realtime",
        name="Churn live",
    )
    preview = step(marketer_client, "preview", data, url=edit_url(sync))
    assert preview.context["preview"].adds == 4
    assert "The next run, with these settings" in page(preview)
    assert "A boolean attribute per cohort (In &lt;cohort&gt;) (this sync&#x27;s choice)" in page(
        preview
    )
    assert Sync.objects.get().name == "Churn → Braze"  # previewing writes nothing
    response = marketer_client.post(edit_url(sync), data)
    assert response["Location"] == reverse("syncs:sync_detail", args=[sync.pk])
    sync.refresh_from_db()
    assert sync.name == "Churn live"
    assert sync.identifier_mapping == ["external_id", "user_alias"]
    assert sync.options == {"membership_mode": "boolean"}
    assert sync.cadence == {"kind": "realtime"}
    entry = AuditEntry.objects.get(action="sync.updated")
    assert entry.actor == marketer
    assert set(entry.details) == {"name", "identifier_mapping", "options", "cadence"}


def test_an_hourly_sync_keeps_its_minute_when_edited(marketer_client, sync):
    Sync.objects.filter(pk=sync.pk).update(cadence={"kind": "hourly", "minute": 17})
    sync.refresh_from_db()
    data = answers(sync.cohort, sync.connection, cadence="hourly", name="Renamed")
    marketer_client.post(edit_url(sync), data)
    sync.refresh_from_db()
    assert (sync.name, sync.cadence) == ("Renamed", {"kind": "hourly", "minute": 17})


def test_a_bad_edit_changes_nothing(marketer_client, sync):
    data = answers(sync.cohort, sync.connection, primary_identifier="gaid", name="Renamed")
    response = marketer_client.post(edit_url(sync), data)
    assert response.context["state"].step == "identifier"
    assert "Braze does not take this identifier." in page(response)
    sync.refresh_from_db()
    assert (sync.name, sync.identifier_mapping) == ("Churn → Braze", ["external_id"])
    assert not AuditEntry.objects.filter(action="sync.updated").exists()


def test_the_edit_keeps_cohort_and_destination_whatever_is_posted(marketer_client, sync, android):
    other = Cohort.objects.create(name="Other", source=Cohort.Source.MANUAL)
    data = answers(other, android, name="Renamed")
    marketer_client.post(edit_url(sync), data)
    sync.refresh_from_db()
    assert (sync.name, sync.cohort.name, sync.connection.name) == (
        "Renamed",
        "Churn risk",
        "Braze prod",
    )


# Query counts: the same for any cohort size


@pytest.mark.parametrize("target", ["cohort", "destination", "identifier", "cadence", "preview"])
def test_each_step_costs_the_same_queries_for_a_small_and_a_big_cohort(
    marketer_client, braze, target
):
    def queries(size):
        cohort = Cohort.objects.create(name=f"Cohort {size}", source=Cohort.Source.MANUAL)
        apply_changes(cohort.pk, add=[ext(f"u{n}", gaid=f"g{n}") for n in range(size)])
        sync = make_sync(name=f"Sync {size}", cohort=cohort, connection=braze)
        counts = []
        for url in (CREATE, edit_url(sync)):
            if url != CREATE and target in ("cohort", "destination"):
                continue
            with CaptureQueriesContext(db) as captured:
                response = step(marketer_client, target, answers(cohort, braze), url=url)
            assert response.context["state"].step == target
            counts.append(len(captured))
        return counts

    assert queries(3) == queries(120)


def test_an_appsflyer_edit_keeps_the_audience_unless_a_new_key_is_given(
    marketer_client, cohort, android
):
    sync = make_sync(
        name="Churn → AF",
        cohort=cohort,
        connection=android,
        mapping=["gaid"],
        options={"import_key": "AUD-1"},
    )

    assert "import key <code>AUD-1</code>" in page(marketer_client.get(edit_url(sync)))
    data = answers(cohort, android, primary_identifier="gaid", name="Renamed")
    marketer_client.post(edit_url(sync), data)
    sync.refresh_from_db()
    assert (sync.name, sync.options) == ("Renamed", {"import_key": "AUD-1"})
    marketer_client.post(edit_url(sync), {**data, "import_key": "AUD-2"})
    sync.refresh_from_db()
    assert sync.options == {"import_key": "AUD-2"}
