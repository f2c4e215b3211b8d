"""Issue #15: what a run's page keeps of a request and its answer. No credential anywhere (the
key echoed back, a key in the query string or the body), and no identifier beyond a batch's
first 3 members, in the request or quoted back in the answer; both partners."""

import json
from datetime import UTC, datetime
from functools import partial

import pytest

from connections.partners import PARTNERS
from connections.partners.appsflyer.partner import AppsFlyer
from connections.partners.appsflyer.payload import device_rows, import_payload
from connections.partners.base import Direction, Recipient
from connections.partners.braze.partner import Braze
from connections.partners.braze.payload import build_track_payload
from connections.partners.exchanges import Exchange, recording
from connections.partners.redaction import (
    MASK,
    SAMPLE,
    RedactedRequest,
    as_text,
    mask_identifiers,
    sample_lists,
    transcript,
    without_credentials,
)
from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY

BRAZE_KEY = "braze-rest-key-3f9c-5e7a-do-not-show"
APPSFLYER_TOKEN = "eyJhbGciOi.appsflyer-v2-token.do-not-show"
AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def exchange(url: str, request, answer, *, secret: str, status: int | None = 400) -> Exchange:
    return Exchange(
        sent_at=AT.timestamp(),
        method="POST",
        url=url,
        request=request,
        status=status,
        answer=answer,
        seconds=0.1234,
        note=f"HTTP {status}" if status else "Could not reach rest.example.com (ConnectTimeout)",
        secret=secret,
    )


def braze_redactor(path, body):
    return Braze.redact_request(path, body, sample=SAMPLE)


def appsflyer_redactor(path, body):
    return AppsFlyer.redact_request(path, body, sample=SAMPLE)


def stored(kept) -> str:
    """Everything the row would hold, as one text."""
    return json.dumps([kept.method, kept.path, kept.request, kept.answer, kept.note])


def braze_batch(size: int = 75) -> dict:
    payload, _ = build_track_payload(
        cohort_label="Churn risk",
        add=[Recipient(n, "external_id", f"member-{n:04d}") for n in range(size)],
        remove=[],
        mode="array",
        array_attribute="cohortsync_cohorts",
        update_existing_only=True,
        default_alias_label="",
    )
    return payload


def test_braze_keeps_the_first_three_objects_and_counts_the_rest():
    answer = {"message": "success", "attributes_processed": 75}
    kept = transcript(
        exchange("https://rest.example.com/users/track", braze_batch(), answer, secret=BRAZE_KEY),
        braze_redactor,
    )
    request = json.loads(kept.request)
    assert [obj["external_id"] for obj in request["attributes"][:3]] == [
        "member-0000",
        "member-0001",
        "member-0002",
    ]
    assert request["attributes"][3] == "… and 72 more objects"
    assert request["attributes"][0]["cohortsync_cohorts"] == {"add": ["Churn risk"]}
    assert "member-0003" not in kept.request and "member-0074" not in kept.request
    assert json.loads(kept.answer) == answer
    assert (kept.path, kept.status, kept.milliseconds) == ("/users/track", 400, 123)


def test_braze_identifiers_quoted_back_beyond_the_sample_are_masked_and_the_key_too():
    answer = {
        "message": f"Invalid data; key {BRAZE_KEY} used",
        "errors": [
            {"type": "'external_id' member-0001 is not valid", "index": 1},
            {"type": "'external_id' member-0070 is not valid", "index": 70},
            {"type": "profile external_id:member-0071.", "index": 71},
            {"type": "member-0072", "index": 72},
        ],
    }
    kept = transcript(
        exchange(
            f"https://rest.example.com/users/track?api_key={BRAZE_KEY}",
            braze_batch(),
            answer,
            secret=BRAZE_KEY,
        ),
        braze_redactor,
    )
    errors = json.loads(kept.answer)["errors"]
    # A member of the sample stays readable: the request shows it anyway.
    assert errors[0]["type"] == "'external_id' member-0001 is not valid"
    assert errors[1]["type"] == f"'external_id' {MASK} is not valid"
    assert errors[2]["type"] == f"profile external_id:{MASK}."
    assert errors[3]["type"] == MASK
    assert [error["index"] for error in errors] == [1, 70, 71, 72]
    text = stored(kept)
    assert BRAZE_KEY not in text
    assert not any(f"member-{n:04d}" in text for n in range(3, 75))
    assert kept.path == "/users/track?…"


def test_braze_user_aliases_beyond_the_sample_are_masked_and_their_label_stays():
    payload, _ = build_track_payload(
        cohort_label="Churn risk",
        add=[Recipient(n, "user_alias", f"alias-{n}", "crm_id") for n in range(10)],
        remove=[],
        mode="boolean",
        array_attribute="cohortsync_cohorts",
        update_existing_only=True,
        default_alias_label="",
    )
    answer = {"message": "alias-7 of label crm_id is unknown"}
    kept = transcript(
        exchange("https://rest.example.com/users/track", payload, answer, secret=BRAZE_KEY),
        braze_redactor,
    )
    assert "alias-7" not in stored(kept)
    assert json.loads(kept.answer)["message"] == f"{MASK} of label crm_id is unknown"
    assert json.loads(kept.request)["attributes"][2]["user_alias"]["alias_name"] == "alias-2"


def appsflyer_batch(size: int) -> dict:
    rows = device_rows(
        [Recipient(n, "gaid", f"gaid-{n:05d}-aaaa-bbbb") for n in range(size)],
        app_id="com.example.app",
        platform="android",
    )
    return import_payload(import_key="audience-key-1", platform="android", devices=rows.devices)


def test_appsflyer_keeps_the_audience_and_three_devices_and_masks_the_rest_in_the_answer():
    answer = {"message": "gaid-09999-aaaa-bbbb and gaid-00002-aaaa-bbbb could not be understood"}
    kept = transcript(
        exchange(
            "https://hq1.appsflyer.com/api/audiences-import-api/v2/add",
            appsflyer_batch(10_000),
            answer,
            secret=APPSFLYER_TOKEN,
        ),
        appsflyer_redactor,
    )
    request = json.loads(kept.request)
    assert request["import_key"] == "audience-key-1"
    assert request["platform"] == "android"
    assert request["devices"][:3] == [
        {"app_id": "com.example.app", "gaid": f"gaid-{n:05d}-aaaa-bbbb"} for n in range(3)
    ]
    assert request["devices"][3] == "… and 9,997 more devices"
    assert json.loads(kept.answer)["message"] == (
        f"{MASK} and gaid-00002-aaaa-bbbb could not be understood"
    )
    text = stored(kept)
    assert not any(f"gaid-{n:05d}" in text for n in range(3, 10_000))
    assert APPSFLYER_TOKEN not in text
    assert kept.path == "/api/audiences-import-api/v2/add"


def test_appsflyer_a_token_in_the_body_or_echoed_back_is_never_kept():
    body = {**appsflyer_batch(2), "api_token": APPSFLYER_TOKEN, "authentication": "x"}
    answer = f"<html>403 Forbidden: token {APPSFLYER_TOKEN} revoked</html>"
    kept = transcript(
        exchange(
            "https://hq1.appsflyer.com/api/audiences-import-api/v2/add",
            body,
            answer,
            secret=APPSFLYER_TOKEN,
            status=403,
        ),
        appsflyer_redactor,
    )
    request = json.loads(kept.request)
    assert request["api_token"] == MASK and request["authentication"] == MASK
    assert len(request["devices"]) == 2  # no more than the sample: nothing to count
    assert kept.answer == f"<html>403 Forbidden: token {MASK} revoked</html>"
    assert APPSFLYER_TOKEN not in stored(kept)


def test_an_unanswered_request_keeps_its_reason_and_no_answer():
    kept = transcript(
        exchange(
            "https://rest.example.com/users/track",
            braze_batch(5),
            None,
            secret=BRAZE_KEY,
            status=None,
        ),
        braze_redactor,
    )
    assert (kept.status, kept.answer) == (None, "")
    assert kept.note == "Could not reach rest.example.com (ConnectTimeout)"


def test_the_generic_rule_cuts_every_list_and_hides_what_it_cut():
    redacted = sample_lists({"users": ["a1", "b2", "c3", "d4", {"id": "e5"}], "n": 5}, 3)
    assert redacted == RedactedRequest(
        {"users": ["a1", "b2", "c3", "… and 2 more items"], "n": 5}, frozenset({"d4", "e5"})
    )
    assert mask_identifiers({"m": "d4 and a1", "k": ["e5"]}, redacted.hidden) == {
        "m": f"{MASK} and a1",
        "k": [MASK],
    }


def test_credential_keys_are_masked_at_any_depth_and_the_secret_inside_any_string():
    body = {"outer": {"api_key": "k1", "Client-Secret": "k2", "list": [{"password": "k3"}]}}
    assert without_credentials(body, "zz") == {
        "outer": {"api_key": MASK, "Client-Secret": MASK, "list": [{"password": MASK}]}
    }
    assert without_credentials(["a zz b", {"zz": "zz"}], "zz") == [f"a {MASK} b", {MASK: MASK}]


def test_long_bodies_are_cut_and_say_so():
    text = as_text({"message": "x" * 10_000}, limit=100)
    assert len(text) < 160
    assert text.endswith("characters in all")
    assert as_text(None) == ""


SIMULATOR_SECRETS = {"braze": DEMO_BRAZE_KEY, "appsflyer": DEMO_APPSFLYER_TOKEN}


@pytest.mark.parametrize("kind", sorted(SIMULATOR_SECRETS))
def test_each_destination_batch_sent_to_the_simulator_shows_three_members_and_no_credential(
    kind, sandbox
):
    assert set(SIMULATOR_SECRETS) == {
        k for k, p in PARTNERS.items() if Direction.DESTINATION in p.directions
    }
    partner_class = PARTNERS[kind]
    config = partner_class.parse_config(partner_class.simulator_config(sandbox.url))
    partner = partner_class(config, SIMULATOR_SECRETS[kind])
    options = partner.prepare_sync(cohort_label="Registry check", options={}).options
    identifier = partner_class.default_identifier(config)
    members = [f"member-{n:04d}-{kind}" for n in range(10)]

    with recording() as noted:
        partner.send_batch(
            cohort_label="Registry check",
            add=[Recipient(n, identifier, value) for n, value in enumerate(members)],
            remove=[],
            options=options,
        )

    [sent] = noted
    assert sent.status is not None and sent.status < 300
    kept = transcript(sent, partial(partner_class.redact_request, sample=SAMPLE))
    text = stored(kept)
    assert [member for member in members if member in text] == members[:3]
    assert "… and 7 more" in kept.request
    assert SIMULATOR_SECRETS[kind] not in text
