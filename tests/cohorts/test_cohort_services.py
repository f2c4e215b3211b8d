import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from cohorts import services
from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort, CohortMember
from cohorts.services import (
    change_members,
    create_cohort,
    delete_cohort,
    parse_identifiers,
    rename_cohort,
)
from core.models import AuditEntry
from syncs.models import Sync
from tests.base import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort(marketer):
    return create_cohort(name="Churn risk", actor=marketer)


@pytest.fixture
def partner_cohort():
    return Cohort.objects.create(
        name="AF lapsed buyers",
        source=Cohort.Source.PARTNER,
        partner="appsflyer",
        partner_cohort_id="af-123",
    )


def members(cohort):
    return set(
        CohortMember.objects.filter(cohort=cohort).values_list("id_type", "alias_label", "value")
    )


def error_of(exc_info, field):
    return " ".join(exc_info.value.message_dict[field])


def paste(cohort, text, *, remove=False, id_type="external_id", alias_label="", actor=None):
    return change_members(
        cohort=cohort,
        id_type=id_type,
        alias_label=alias_label,
        text=text,
        remove=remove,
        actor=actor,
    )


# Parsing pasted identifiers


def test_identifiers_may_be_one_per_line_or_separated_by_commas_and_spaces():
    text = "  u1\r\nu2, u3,,u4\n\n\tu5  u6\n, \n"
    assert parse_identifiers(text) == ["u1", "u2", "u3", "u4", "u5", "u6"]


def test_a_paste_with_no_identifier_is_refused():
    with pytest.raises(ValidationError) as caught:
        parse_identifiers(" \n , \n\t")
    assert error_of(caught, "text") == "Paste at least one identifier."


def test_an_identifier_longer_than_255_characters_is_refused_naming_its_line():
    text = "ok-1\nok-2\n\nok-3, " + "x" * 256 + "\n" + "y" * 300
    with pytest.raises(ValidationError) as caught:
        parse_identifiers(text)
    message = error_of(caught, "text")
    assert message.startswith("Line 4: ")
    assert "longer than 255 characters" in message
    assert parse_identifiers("z" * 255) == ["z" * 255]


def test_an_invisible_character_is_refused_naming_its_line():
    with pytest.raises(ValidationError) as caught:
        parse_identifiers("good\nbad\u200bvalue\nbad\x00too")
    message = error_of(caught, "text")
    assert message.startswith("Line 2: ")
    assert "invisible or control character" in message


def test_ten_thousand_identifiers_are_accepted_and_one_more_is_refused():
    assert len(parse_identifiers("\n".join(f"u{n}" for n in range(10_000)))) == 10_000
    with pytest.raises(ValidationError) as caught:
        parse_identifiers("\n".join(f"u{n}" for n in range(10_001)))
    assert error_of(caught, "text").startswith("Line 10001: more than 10,000 identifiers")


# Changing members


def test_pasted_identifiers_are_added_with_counts_and_an_audit_entry_without_them(cohort, marketer):
    apply_changes(cohort.pk, add=[Identity("external_id", "already")])
    counts = paste(cohort, "new-1\nnew-2, already\nnew-1", actor=marketer)
    assert (counts.added, counts.removed, counts.ignored) == (2, 0, 1)
    assert cohort.member_count == 3
    entry = AuditEntry.objects.get(action="cohort.members_added")
    assert entry.actor == marketer
    assert entry.target_id == str(cohort.pk)
    assert entry.details == {
        "id_type": "external_id",
        "pasted": 4,
        "added": 2,
        "removed": 0,
        "ignored": 1,
    }
    assert "new-1" not in str(entry.details)


def test_pasted_identifiers_are_removed_and_absent_ones_counted_as_ignored(cohort, marketer):
    paste(cohort, "a b c")
    counts = paste(cohort, "a\nc\nnever-there", remove=True, actor=marketer)
    assert (counts.added, counts.removed, counts.ignored) == (0, 2, 1)
    assert members(cohort) == {("external_id", "", "b")}
    assert cohort.member_count == 1
    entry = AuditEntry.objects.get(action="cohort.members_removed")
    assert (entry.details["removed"], entry.details["ignored"]) == (2, 1)


def test_user_aliases_need_a_label_and_carry_it(cohort):
    with pytest.raises(ValidationError) as caught:
        paste(cohort, "alias-1", id_type="user_alias", alias_label="  ")
    assert "alias label" in error_of(caught, "alias_label")
    paste(cohort, "alias-1", id_type="user_alias", alias_label=" crm_id ")
    assert members(cohort) == {("user_alias", "crm_id", "alias-1")}


def test_the_label_is_ignored_for_identifiers_that_are_not_aliases(cohort):
    paste(cohort, "device-1", id_type="device_id", alias_label="stray")
    assert members(cohort) == {("device_id", "", "device-1")}


def test_an_unknown_identifier_type_is_refused(cohort):
    with pytest.raises(ValidationError) as caught:
        paste(cohort, "x", id_type="email")
    assert "email" in error_of(caught, "id_type")


def test_invalid_input_changes_nothing_and_writes_no_audit_entry(cohort):
    with pytest.raises(ValidationError):
        paste(cohort, "fine-1\nfine-2\n" + "x" * 256)
    cohort.refresh_from_db()
    assert members(cohort) == set()
    assert cohort.member_count == 0
    assert not AuditEntry.objects.filter(action__startswith="cohort.members").exists()


# Creating and renaming


def test_a_cohort_is_created_manual_with_a_stripped_name_and_audited(marketer):
    cohort = create_cohort(name="  Winback Q4 ", actor=marketer, ip="10.0.0.1")
    assert (cohort.name, cohort.source, cohort.created_by) == (
        "Winback Q4",
        Cohort.Source.MANUAL,
        marketer,
    )
    entry = AuditEntry.objects.get(action="cohort.created")
    assert (entry.target_id, entry.ip) == (str(cohort.pk), "10.0.0.1")


@pytest.mark.parametrize("name", ["", "   ", "n" * 256])
def test_a_blank_or_too_long_name_is_refused(marketer, name):
    with pytest.raises(ValidationError) as caught:
        create_cohort(name=name, actor=marketer)
    assert error_of(caught, "name")
    assert not Cohort.objects.exists()


def test_a_manual_cohort_is_renamed_and_its_last_change_moves(cohort, marketer):
    before = cohort.updated_at
    rename_cohort(cohort=cohort, name=" Churn risk (EU) ", actor=marketer)
    cohort.refresh_from_db()
    assert cohort.name == "Churn risk (EU)"
    assert cohort.updated_at > before
    entry = AuditEntry.objects.get(action="cohort.renamed")
    assert entry.details == {"from": "Churn risk", "to": "Churn risk (EU)"}


def test_renaming_to_the_same_name_writes_nothing(cohort, marketer):
    rename_cohort(cohort=cohort, name="Churn risk", actor=marketer)
    assert not AuditEntry.objects.filter(action="cohort.renamed").exists()


def test_a_partner_cohort_cannot_be_renamed_in_the_dashboard(partner_cohort, marketer):
    with pytest.raises(ValidationError) as caught:
        rename_cohort(cohort=partner_cohort, name="Mine now", actor=marketer)
    assert "named by its partner (AppsFlyer)" in caught.value.messages[0]
    partner_cohort.refresh_from_db()
    assert partner_cohort.name == "AF lapsed buyers"
    assert not AuditEntry.objects.filter(action="cohort.renamed").exists()


# Deleting


def test_deleting_a_cohort_removes_its_members_and_is_audited(cohort, marketer):
    paste(cohort, "a b c")
    pk = cohort.pk
    delete_cohort(cohort=cohort, actor=marketer)
    assert not Cohort.objects.filter(pk=pk).exists()
    assert not CohortMember.objects.filter(cohort_id=pk).exists()
    entry = AuditEntry.objects.get(action="cohort.deleted")
    assert entry.target_id == str(pk)
    assert entry.details == {"name": "Churn risk", "source": "manual", "member_count": 3}


def test_deleting_a_cohort_that_syncs_use_is_refused_naming_the_syncs(cohort, marketer):
    connection = make_connection()
    Sync.objects.create(name="Braze churn", cohort=cohort, connection=connection)
    Sync.objects.create(name="AF churn", cohort=cohort, connection=connection)
    with pytest.raises(ValidationError) as caught:
        delete_cohort(cohort=cohort, actor=marketer)
    message = caught.value.messages[0]
    assert "2 syncs use it (AF churn, Braze churn)" in message
    assert Cohort.objects.filter(pk=cohort.pk).exists()
    assert not AuditEntry.objects.filter(action="cohort.deleted").exists()


def test_a_sync_created_after_the_check_is_still_protected_by_the_foreign_key(
    cohort, marketer, monkeypatch
):
    Sync.objects.create(name="Late sync", cohort=cohort, connection=make_connection())
    real = services._sync_names
    calls = iter([[]])
    monkeypatch.setattr(services, "_sync_names", lambda pk: next(calls, None) or real(pk))
    with pytest.raises(ValidationError) as caught:
        delete_cohort(cohort=cohort, actor=marketer)
    assert "1 sync uses it (Late sync)" in caught.value.messages[0]
    assert Cohort.objects.filter(pk=cohort.pk).exists()
    assert cohort.pk is not None
    assert not AuditEntry.objects.filter(action="cohort.deleted").exists()


def test_the_last_change_of_a_cohort_follows_its_members(cohort):
    before = timezone.now()
    paste(cohort, "a")
    assert cohort.updated_at >= before


def test_a_partner_fed_cohort_refuses_pasted_changes(partner_cohort):
    with pytest.raises(ValidationError, match="change only with that partner's pushes"):
        paste(partner_cohort, "u-1")
    assert not CohortMember.objects.filter(cohort=partner_cohort).exists()


def test_a_cohort_cannot_be_deleted_while_an_upload_is_being_applied(cohort, marketer):
    from cohorts.models import CsvUpload

    upload = CsvUpload.objects.create(
        cohort=cohort, mode="add", file_name="a.csv", stored_path="x", status="running"
    )
    with pytest.raises(ValidationError, match="while a CSV upload is being applied"):
        services.delete_cohort(cohort=cohort, actor=marketer)
    assert Cohort.objects.filter(pk=cohort.pk).exists()
    CsvUpload.objects.filter(pk=upload.pk).update(status="succeeded")
    services.delete_cohort(cohort=cohort, actor=marketer)
    assert not Cohort.objects.filter(pk=cohort.pk).exists()
