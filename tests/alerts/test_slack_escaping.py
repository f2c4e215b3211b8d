"""Security issue #13, finding 8: names people give syncs, cohorts and connections (and messages
partners send back) go into Slack-format webhook text escaped by Slack's rules (& < > as &amp;
&lt; &gt;), so a name cannot notify the channel (`<!channel>`) or carry a disguised link
(`<http://x|y>`)."""

import re

import pytest
from django.utils import timezone

from alerts.models import AlertDelivery, AlertState
from alerts.noise import StateChange
from alerts.services import webhook_payload
from alerts.texts import connection_alert, run_alert, sample_alert, slack_escape
from connections.models import Connection
from syncs.models import SyncRun
from tests.factories import make_cohort, make_connection, make_run, make_sync

pytestmark = pytest.mark.django_db

HOSTILE = "<!channel> Q&A <http://evil.example|your bank> <@U123>"
ESCAPED = "&lt;!channel&gt; Q&amp;A &lt;http://evil.example|your bank&gt; &lt;@U123&gt;"
# Slack markup: <!...> mentions, <@...> users, <#...> channels, <http...|...> links.
SLACK_MARKUP = re.compile(r"<[!@#]|<https?:")


def failing(since=None):
    return StateChange(
        previous=AlertState.State.OK, since=since or timezone.now(), current="failing"
    )


def delivered_text(alert):
    delivery = AlertDelivery.objects.create(
        channel=AlertDelivery.Channel.WEBHOOK,
        event=alert.event,
        title=alert.title,
        text=alert.text,
        url=alert.url,
    )
    return webhook_payload(delivery)["text"]


def test_slack_escape_follows_slacks_three_rules():
    assert slack_escape(HOSTILE) == ESCAPED
    assert slack_escape("a &lt; b") == "a &amp;lt; b"  # & first: no double meaning
    assert slack_escape("plain: *bold* _it_ → ok") == "plain: *bold* _it_ → ok"


def test_a_failed_runs_alert_escapes_the_sync_cohort_and_connection_names_and_the_error():
    sync = make_sync(
        name=f"Sync {HOSTILE}",
        cohort=make_cohort(name=f"Cohort {HOSTILE}"),
        connection=make_connection(name=f"Braze {HOSTILE}"),
    )
    run = make_run(
        sync,
        status=SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        error_summary=f"Braze said {HOSTILE}",
    )
    alert = run_alert(run, failing())
    text = delivered_text(alert)
    assert not SLACK_MARKUP.search(text), text
    assert f"Sync {ESCAPED}" in alert.title
    for part in (f"Sync {ESCAPED}", f"Cohort {ESCAPED}", f"Braze {ESCAPED}", f"said {ESCAPED}"):
        assert part in text
    assert alert.subject_label == sync.name  # the raw name, for the JSON field and the list


def test_a_connection_alert_escapes_its_name_and_the_partners_message():
    connection = make_connection(name=f"Braze {HOSTILE}")
    Connection.objects.filter(pk=connection.pk).update(last_error=f"401 {HOSTILE}")
    connection.refresh_from_db()
    text = delivered_text(connection_alert(connection, failing()))
    assert not SLACK_MARKUP.search(text), text
    assert f"Braze {ESCAPED}" in text and f"401 {ESCAPED}" in text


def test_the_test_alert_escapes_who_sent_it():
    text = delivered_text(sample_alert("<!here>&co@example.com"))
    assert "&lt;!here&gt;&amp;co@example.com" in text
    assert not SLACK_MARKUP.search(text)


def test_the_link_to_the_page_stays_a_link():
    sync = make_sync(name="Plain")
    run = make_run(sync, status=SyncRun.Status.FAILED, finished_at=timezone.now())
    alert = run_alert(run, failing())
    assert delivered_text(alert).endswith(f"\n{alert.url}")
    assert alert.url.startswith("http")
