"""Member lookup by the beginning of an identifier (#15): every type, exact matches first,
case-insensitive for hexadecimal ids only, paged, bounded, each query served by an index and
their number fixed."""

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from cohorts import member_search
from cohorts.member_search import extra_query, find_identifiers, primary_query
from cohorts.membership import Identity
from tests.factories import make_cohort

pytestmark = pytest.mark.django_db
URL = "/members/"


def ext(value, **extras):
    return Identity("external_id", value, extras=tuple(extras.items()))


def found(prefix, id_type=None):
    return [(m.name, m.value) for m in find_identifiers(prefix, id_type).matches]


def test_every_identifier_type_is_searched_by_its_beginning_exact_first():
    make_cohort(
        name="A",
        members=[
            ext("ab", braze_id="ab99"),
            ext("abc-1"),
            Identity("device_id", "abc-device"),
            Identity("user_alias", "abc-alias", "crm"),
            ext("zzz", gaid="abc00000-1111"),
            ext("xab"),
        ],
    )
    make_cohort(name="B", members=[ext("abc-1")])
    assert found("abc") == [  # in order of value
        ("external_id", "abc-1"),
        ("user_alias", "abc-alias"),
        ("device_id", "abc-device"),
        ("gaid", "abc00000-1111"),
    ]
    matches = find_identifiers("ab").matches
    assert (matches[0].name, matches[0].value, matches[0].exact) == ("external_id", "ab", True)
    assert not any(match.exact for match in matches[1:])
    assert {(m.value, m.members) for m in matches if m.name == "external_id"} == {
        ("ab", 1),
        ("abc-1", 2),  # in two cohorts
    }
    assert found("abc", "gaid") == [("gaid", "abc00000-1111")]


def test_hexadecimal_ids_match_in_either_case_and_the_others_as_typed():
    make_cohort(members=[ext("Ann", idfa="5D4E-AAAA"), ext("ann2", gaid="5d4e-bbbb")])
    assert found("5d4e") == [("idfa", "5D4E-AAAA"), ("gaid", "5d4e-bbbb")]
    assert found("5D4E") == [("idfa", "5D4E-AAAA"), ("gaid", "5d4e-bbbb")]
    assert found("ann") == [("external_id", "ann2")]
    assert found("An") == [("external_id", "Ann")]
    [exact] = [m for m in find_identifiers("5d4e-aaaa").matches if m.exact]
    assert exact.value == "5D4E-AAAA"


def test_the_search_is_bounded_and_says_when_it_stopped(monkeypatch):
    monkeypatch.setattr(member_search, "SCAN_LIMIT", 5)
    make_cohort(members=[ext(f"user-{n:02d}") for n in range(8)])
    result = find_identifiers("user-")
    assert [m.value for m in result.matches] == [f"user-{n:02d}" for n in range(5)]
    assert result.truncated
    assert not find_identifiers("user-07").truncated


def plan(queryset):
    if db.vendor == "postgresql":  # on a tiny table the planner would rather scan it
        with db.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
    return queryset.explain()


def served_by(queryset, index):
    """The query seeks into `index` (a range of it), rather than reading all of it."""
    text = plan(queryset)
    seeks = "Index Cond" in text if db.vendor == "postgresql" else "SEARCH" in text
    return index in text and seeks


def test_each_query_is_served_by_an_index():
    make_cohort(members=[ext(f"user-{n}", idfa=f"ID{n}") for n in range(50)])
    assert served_by(primary_query("user-1", ["external_id"]), "member_value_idx")
    assert served_by(extra_query("idfa", "ID1"), "member_idfa_idx")


def test_the_page_lists_matches_paged_with_links_to_each(viewer_client):
    make_cohort(members=[ext(f"user-{n:02d}") for n in range(45)] + [ext("user-")])
    first = viewer_client.get(URL, {"q": "user-"})
    assert first.status_code == 200
    matches = first.context["matches"]
    assert matches.paginator.count == 46 and matches.paginator.num_pages == 3
    assert matches.object_list[0].value == "user-" and matches.object_list[0].exact
    html = first.content.decode()
    assert f"{URL}?q=user-00&amp;id_type=external_id" in html
    assert "q=user-&amp;id_type=&amp;page=2#prefix-matches" in html
    third = viewer_client.get(URL, {"q": "user-", "page": "3"})
    assert [m.value for m in third.context["matches"].object_list] == [
        f"user-{n:02d}" for n in range(39, 45)
    ]


def test_a_prefix_with_no_exact_member_says_both(viewer_client):
    make_cohort(members=[ext("carol-1")])
    html = viewer_client.get(URL, {"q": "carol"}).content.decode()
    assert "No member has the identifier <code>carol</code> exactly" in html
    assert "carol-1" in html
    nothing = viewer_client.get(URL, {"q": "dave"}).content.decode()
    assert "No member identifier starts with <code>dave</code>." in nothing


def test_the_page_costs_the_same_queries_for_few_or_many_matches(viewer_client):
    def queries(prefix):
        with CaptureQueriesContext(db) as captured:
            assert viewer_client.get(URL, {"q": prefix}).status_code == 200
        return len(captured)

    make_cohort(name="Few", members=[ext("few-1", gaid="f1")])
    make_cohort(name="Many", members=[ext(f"many-{n}", gaid=f"m{n}") for n in range(30)])
    assert queries("many") == queries("few")
