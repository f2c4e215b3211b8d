"""Connections and cohorts through the API: every role reads them, the credential never shows,
outsiders get 404, and lists cost the same queries for one row or many."""

import pytest

from cohorts.models import Cohort
from tests.api.helpers import queries_of
from tests.base import make_connection

pytestmark = pytest.mark.django_db

SECRET = "braze-rest-key-0000-1a2b"
PATHS = ("/connections", "/cohorts")


def test_a_viewer_lists_and_reads_connections_with_the_secret_masked(viewer_api, connection):
    listed = viewer_api.get("/connections")
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 1
    assert [item["name"] for item in body["items"]] == ["Braze prod"]
    read = viewer_api.get(f"/connections/{connection.pk}")
    assert read.status_code == 200
    assert read.json()["secret"] == "••••1a2b"
    assert read.json()["config"]["instance"] == "custom"
    assert read.json()["direction"] == "destination"
    for response in (listed, read):
        text = response.content.decode()
        assert SECRET not in text
        assert connection.encrypted_secret not in text


def test_a_viewer_lists_and_reads_cohorts(viewer_api, cohort):
    listed = viewer_api.get("/cohorts")
    assert listed.status_code == 200
    assert listed.json()["items"][0] == viewer_api.get(f"/cohorts/{cohort.pk}").json()
    assert listed.json()["items"][0]["name"] == "Churn risk"
    assert listed.json()["items"][0]["member_count"] == 0


@pytest.mark.parametrize("path", ["/connections", "/cohorts"])
def test_an_outsider_gets_404_like_on_the_dashboard(outsider_api, connection, cohort, path):
    assert outsider_api.get(path).status_code == 404
    assert outsider_api.get(f"{path}/1").status_code == 404


@pytest.mark.parametrize("path", ["/connections", "/cohorts"])
def test_an_unknown_id_gets_404_in_json(viewer_api, path):
    response = viewer_api.get(f"{path}/424242")
    assert response.status_code == 404
    assert "424242" in response.json()["message"]


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "99999999999999999999999999"])
def test_a_bad_id_gets_422_not_500(viewer_api, bad):
    response = viewer_api.get(f"/cohorts/{bad}")
    assert response.status_code == 422
    assert response.json()["message"]


def test_lists_page_with_limit_and_offset(viewer_api):
    for n in range(5):
        Cohort.objects.create(name=f"Cohort {n}", source=Cohort.Source.MANUAL)
    page = viewer_api.get("/cohorts", limit=2, offset=3).json()
    assert page["count"] == 5
    assert (page["limit"], page["offset"]) == (2, 3)
    assert [item["name"] for item in page["items"]] == ["Cohort 3", "Cohort 4"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}, {"offset": 10**30}]
)
def test_bad_paging_gets_422(viewer_api, params):
    response = viewer_api.get("/cohorts", **params)
    assert response.status_code == 422
    assert response.json()["errors"]


def test_list_queries_do_not_grow_with_rows(viewer_api, django_assert_num_queries):
    make_connection(name="First")
    Cohort.objects.create(name="First", source=Cohort.Source.MANUAL)
    viewer_api.get("/cohorts")  # last-used is written on the first request only
    counts = {path: queries_of(lambda p=path: viewer_api.get(p)) for path in PATHS}
    for n in range(6):
        make_connection(name=f"More {n}")
        Cohort.objects.create(name=f"More {n}", source=Cohort.Source.MANUAL)
    for path, expected in counts.items():
        with django_assert_num_queries(expected):
            assert len(viewer_api.get(path).json()["items"]) == 7
