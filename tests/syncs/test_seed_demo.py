import pytest
from django.core.management import CommandError, call_command

from connections.models import Connection
from syncs.models import Sync

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_says_how_to_log_in(settings, capsys, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEBUG = True
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "admin@example.com" in first
    assert first.splitlines()[-1] == second.splitlines()[-1]  # same password both times
    assert Connection.objects.count() == 2
    braze = Connection.objects.get(kind="braze")
    assert braze.get_config().rest_endpoint == "http://127.0.0.1:8765"
    sync = Sync.objects.get()
    assert sync.connection == braze
    assert sync.cohort.member_count == 520
    assert sync.next_run_at is not None


def test_seed_demo_refuses_to_run_in_production(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG=true"):
        call_command("seed_demo")
