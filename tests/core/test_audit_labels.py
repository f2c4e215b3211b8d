"""Audit entries read as words on every page (the key history, the audit log, a connection's
timeline): each action the code records has a label, and pages show it, not the code (#15)."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from connections.keys import generate_import_key
from core.models import ACTION_LABELS, AuditEntry

ROOT = Path(__file__).resolve().parents[2]
APPS = ("alerts", "api", "cohorts", "cohortsync", "connections", "core", "syncs")


def recorded_actions() -> set[str]:
    """Every action code passed as `action=` in the application code."""
    found: set[str] = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for line in path.read_text().splitlines():
                if "action=" in line:
                    found |= set(re.findall(r"\"([a-z_]+\.[a-z_]+)\"", line))
    return found


def test_every_recorded_action_has_a_label():
    actions = recorded_actions()
    assert "import_key.generated" in actions and "sync.run_requested" in actions
    assert actions - set(ACTION_LABELS) == set()


def test_an_unknown_code_still_reads_as_words():
    assert AuditEntry(action="cohort.members_added").action_label == "Members added"
    assert AuditEntry(action="thing.was_done").action_label == "Thing was done"


@pytest.mark.django_db
def test_the_key_history_and_the_audit_log_show_labels(admin_client, admin_user):
    key, _raw = generate_import_key(partner="appsflyer", name="AF", actor=admin_user)
    history = admin_client.get(reverse("connections:key_detail", args=[key.pk])).content.decode()
    assert "<td>Key generated</td>" in history
    assert "import_key.generated" not in history
    log = admin_client.get(reverse("audit_log")).content.decode()
    assert "Key generated" in log
