import pytest
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from cohorts.membership import Identity, apply_changes, size_history
from cohorts.models import CohortMember, CohortSizeSample
from cohorts.signals import cohort_changed

pytestmark = pytest.mark.django_db


def ext(value):
    return Identity("external_id", value)


def test_adding_counts_only_new_members_and_keeps_the_count(cohort):
    counts = apply_changes(cohort.pk, add=[ext("a"), ext("b"), ext("b")])
    assert (counts.added, counts.ignored) == (2, 0)
    counts = apply_changes(cohort.pk, add=[ext("b"), ext("c")])
    assert (counts.added, counts.ignored) == (1, 1)
    cohort.refresh_from_db()
    assert cohort.member_count == 3 == CohortMember.objects.filter(cohort=cohort).count()


def test_removing_an_absent_member_is_harmless(cohort):
    apply_changes(cohort.pk, add=[ext("a")])
    counts = apply_changes(cohort.pk, remove=[ext("a"), ext("zzz")])
    assert (counts.removed, counts.ignored) == (1, 1)
    cohort.refresh_from_db()
    assert cohort.member_count == 0


def test_aliases_and_device_ids_are_distinct_identities(cohort):
    apply_changes(
        cohort.pk,
        add=[
            Identity("user_alias", "dev-1", "device_id"),
            Identity("user_alias", "dev-1", "other_label"),
            Identity("device_id", "dev-1"),
            ext("dev-1"),
        ],
    )
    assert CohortMember.objects.filter(cohort=cohort).count() == 4


def test_writes_are_set_based_not_one_statement_per_identity(cohort):
    from django.db import connection

    apply_changes(cohort.pk, add=[ext("first")])  # creates this minute's size sample
    with CaptureQueriesContext(connection) as few:
        apply_changes(cohort.pk, add=[ext(f"few-{n}") for n in range(10)])
    with CaptureQueriesContext(connection) as many:
        apply_changes(cohort.pk, add=[ext(str(n)) for n in range(1000)])
    assert len(many) == len(few)
    assert CohortMember.objects.filter(cohort=cohort).count() == 1011


def test_extra_identifiers_are_stored_and_refreshed(cohort):
    apply_changes(
        cohort.pk,
        add=[Identity("external_id", "u1", extras=(("gaid", "g-1"),))],
        update_extras=True,
    )
    counts = apply_changes(
        cohort.pk,
        add=[Identity("external_id", "u1", extras=(("gaid", "g-2"), ("idfv", "v-1")))],
        update_extras=True,
    )
    assert (counts.added, counts.ignored) == (0, 1)
    member = CohortMember.objects.get(cohort=cohort)
    assert (member.gaid, member.idfv) == ("g-2", "v-1")


def test_the_change_is_announced_after_commit_only(cohort, django_capture_on_commit_callbacks):
    seen = []

    def listener(sender, cohort_id, **kwargs):
        seen.append(cohort_id)

    cohort_changed.connect(listener)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            apply_changes(cohort.pk, add=[ext("a")])
            raise RuntimeError("rolled back")
        assert seen == []
        with django_capture_on_commit_callbacks(execute=True):
            apply_changes(cohort.pk, add=[ext("a")])
        assert seen == [cohort.pk]
        with django_capture_on_commit_callbacks(execute=True):
            apply_changes(cohort.pk, add=[ext("a")])  # nothing changed: nothing announced
        assert seen == [cohort.pk]
    finally:
        cohort_changed.disconnect(listener)


def test_size_is_sampled_at_most_once_a_minute(cohort):
    apply_changes(cohort.pk, add=[ext("a")])
    apply_changes(cohort.pk, add=[ext("b")])
    samples = size_history(cohort.pk)
    assert len(samples) == CohortSizeSample.objects.count() <= 2
    assert samples[-1][1] == 2


# Replacing the whole membership (an Amplitude download): staged, then two set-based statements


def members(cohort):
    return set(
        CohortMember.objects.filter(cohort=cohort).values_list("id_type", "alias_label", "value")
    )


def test_replacing_adds_the_new_removes_the_absent_and_counts_repeats_as_ignored(cohort):
    from cohorts.membership import replace_members

    apply_changes(cohort.pk, add=[ext("a"), ext("b"), Identity("user_alias", "b", "label")])
    chunks = [[ext("b"), ext("c")], [ext("c"), Identity("user_alias", "b", "label")]]
    counts = replace_members(cohort.pk, iter(chunks))
    assert (counts.added, counts.removed, counts.ignored) == (1, 1, 3)
    assert members(cohort) == {
        ("external_id", "", "b"),
        ("external_id", "", "c"),
        ("user_alias", "label", "b"),
    }
    cohort.refresh_from_db()
    assert cohort.member_count == 3
    assert size_history(cohort.pk)[-1][1] == 3


def test_a_replacement_that_fails_halfway_changes_nothing(cohort):
    from cohorts.membership import replace_members

    apply_changes(cohort.pk, add=[ext("a"), ext("b")])

    def chunks():
        yield [ext("x"), ext("y")]
        raise ValueError("the file broke off")

    with pytest.raises(ValueError, match="broke off"):
        replace_members(cohort.pk, chunks())
    assert members(cohort) == {("external_id", "", "a"), ("external_id", "", "b")}
    cohort.refresh_from_db()
    assert cohort.member_count == 2
    # The staging table went with the rolled-back transaction: the next replacement works.
    counts = replace_members(cohort.pk, iter([[ext("b")]]))
    assert (counts.added, counts.removed) == (0, 1)
