"""Data-import keys: generation, storage, verification, revocation and rotation."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections import keys
from connections.keys import KeyRefused, generate_import_key, verify
from connections.models import ImportKey
from core.models import AuditEntry

pytestmark = pytest.mark.django_db


def make_key(partner="appsflyer", name="AppsFlyer production", actor=None, **kwargs):
    return generate_import_key(partner=partner, name=name, actor=actor, **kwargs)


def refusal(raw_key, partner="appsflyer", **kwargs) -> str:
    with pytest.raises(KeyRefused) as caught:
        verify(raw_key, partner, **kwargs)
    return caught.value.reason


def update_count(queries) -> int:
    return sum(
        1 for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")
    )


def raw_rows(table: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - a model's own table name
        return cursor.fetchall()


# Generation and storage


def test_generated_key_has_the_documented_shape():
    key, raw = make_key()
    assert raw.startswith("csik_")
    assert len(raw) == keys.RAW_KEY_LENGTH == 61
    assert raw[: len(key.prefix)] == key.prefix
    assert raw[len(key.prefix)] == "_"
    assert len(key.prefix) == len("csik_") + 12


def test_raw_key_is_in_no_column_of_the_import_key_table(admin_user):
    key, raw = make_key(actor=admin_user)
    secret_part = raw[len(key.prefix) + 1 :]
    rows = raw_rows(ImportKey._meta.db_table)
    assert rows
    for row in rows:
        for value in row:
            assert raw not in str(value)
            assert secret_part not in str(value)


def test_raw_key_is_in_no_column_of_the_audit_table(admin_user):
    key, raw = make_key(actor=admin_user)
    keys.rotate_import_key(key=key, actor=admin_user)
    keys.revoke_import_key(key=key, actor=admin_user)
    secret_part = raw[len(key.prefix) + 1 :]
    rows = raw_rows(AuditEntry._meta.db_table)
    assert len(rows) >= 3
    for row in rows:
        for value in row:
            assert secret_part not in str(value)


def test_stored_hash_is_an_hmac_keyed_with_the_server_secret(settings):
    key, raw = make_key()
    assert key.key_hash == keys.hash_key(raw, settings.SECRET_KEY)
    assert key.key_hash != keys.hash_key(raw, "some other secret")
    assert len(key.key_hash) == 64


def test_two_keys_never_share_a_prefix_or_a_secret():
    _, first = make_key()
    _, second = make_key()
    assert first != second
    assert first[:17] != second[:17]


def test_generating_a_key_is_audited_with_actor_and_ip(admin_user):
    key, _ = make_key(actor=admin_user, ip="203.0.113.7")
    entry = AuditEntry.objects.get(action="import_key.generated")
    assert entry.actor == admin_user
    assert entry.target_type == "importkey"
    assert entry.target_id == str(key.pk)
    assert entry.ip == "203.0.113.7"
    assert entry.details["prefix"] == key.prefix


def test_name_is_stripped():
    key, _ = make_key(name="  Amplitude EU  ", partner="amplitude")
    assert key.name == "Amplitude EU"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "   "}, "needs a name"),
        ({"name": "x" * 101}, "at most 100"),
        ({"partner": "braze"}, "Unknown partner"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "in the future"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        make_key(**kwargs)
    assert not ImportKey.objects.exists()
    assert not AuditEntry.objects.exists()


# Verification


def test_valid_key_is_accepted_for_its_partner():
    key, raw = make_key(partner="segment")
    assert verify(raw, "segment") == key


def test_key_for_another_partner_is_refused():
    _, raw = make_key(partner="mixpanel")
    assert refusal(raw, "appsflyer") == "wrong_partner"


def test_unknown_prefix_is_refused():
    _, raw = make_key()
    other = "csik_" + "Z" * 12 + raw[17:]
    assert refusal(other) == "unknown"


def test_known_prefix_with_a_wrong_secret_is_refused():
    _, raw = make_key()
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert refusal(tampered) == "unknown"
    assert len(tampered) == len(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "csik_",
        "not-a-key",
        "Bearer csik_abcdefghijkl_" + "a" * 43,
        "csik_abcdefghijkl_" + "a" * 42,
        "csik_abcdefghijkl_" + "a" * 44,
        "csik_abcdefghij-l_" + "a" * 43,
        "xxxx_abcdefghijkl_" + "a" * 43,
        "csik_abcdefghijkl-" + "a" * 43,
        "csik_abcdefghijkl_" + "a" * 42 + "!",
        "csik_abcdefghijkl_" + "a" * 100_000,
    ],
)
def test_malformed_key_is_refused_as_unknown_without_a_query(raw):
    with CaptureQueriesContext(connection) as queries:
        assert refusal(raw) == "unknown"
    assert len(queries.captured_queries) == 0


def test_non_string_key_is_refused_as_unknown():
    assert refusal(None) == "unknown"


def test_revoked_key_is_refused_on_the_very_next_verify(admin_user):
    key, raw = make_key()
    verify(raw, "appsflyer")
    keys.revoke_import_key(key=key, actor=admin_user)
    assert refusal(raw) == "revoked"


def test_revoked_key_is_refused_even_when_the_partner_is_wrong_too(admin_user):
    key, raw = make_key()
    keys.revoke_import_key(key=key, actor=admin_user)
    assert refusal(raw, "segment") == "revoked"


def test_key_works_until_its_expiry_and_is_refused_from_then_on():
    expires_at = timezone.now() + timedelta(days=1)
    _, raw = make_key(expires_at=expires_at)
    verify(raw, "appsflyer", now=expires_at - timedelta(seconds=1))
    assert refusal(raw, now=expires_at) == "expired"
    assert refusal(raw, now=expires_at + timedelta(days=30)) == "expired"


def test_key_expired_on_the_real_clock_is_refused(monkeypatch):
    expires_at = timezone.now() + timedelta(hours=1)
    _, raw = make_key(expires_at=expires_at)
    verify(raw, "appsflyer")
    monkeypatch.setattr(timezone, "now", lambda: expires_at + timedelta(seconds=1))
    assert refusal(raw) == "expired"


def test_changed_secret_key_refuses_the_key(settings):
    _, raw = make_key()
    settings.SECRET_KEY = "a brand new secret key that is long enough to be plausible"
    assert refusal(raw) == "unknown"


def test_secret_key_fallback_keeps_the_key_working(settings):
    key, raw = make_key()
    old_secret = settings.SECRET_KEY
    settings.SECRET_KEY = "a brand new secret key that is long enough to be plausible"
    settings.SECRET_KEY_FALLBACKS = ["an unrelated old secret", old_secret]
    assert verify(raw, "appsflyer") == key


# last_used bookkeeping


def test_last_used_is_recorded_with_the_ip():
    key, raw = make_key()
    now = timezone.now()
    verify(raw, "appsflyer", ip="198.51.100.4", now=now)
    key.refresh_from_db()
    assert key.last_used_at == now
    assert key.last_used_ip == "198.51.100.4"


def test_last_used_is_written_once_within_a_minute():
    _, raw = make_key()
    start = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        for second in (0, 1, 30, 59):
            verify(raw, "appsflyer", ip="198.51.100.4", now=start + timedelta(seconds=second))
    assert update_count(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        verify(raw, "appsflyer", now=start + timedelta(seconds=61))
    assert update_count(queries) == 1


def test_stale_copy_of_the_row_does_not_write_last_used_again():
    key, _ = make_key()
    start = timezone.now()
    # Another request already recorded the use after this one loaded the row.
    ImportKey.objects.filter(pk=key.pk).update(last_used_at=start)
    stale = ImportKey.objects.get(pk=key.pk)
    stale.last_used_at = None
    with CaptureQueriesContext(connection) as queries:
        keys._record_use(stale, "198.51.100.4", start + timedelta(seconds=5))
    assert len(queries.captured_queries) == 1  # the conditional UPDATE, which matched no row
    key.refresh_from_db()
    assert key.last_used_at == start
    assert key.last_used_ip is None


def test_invalid_ip_is_not_stored():
    key, raw = make_key()
    verify(raw, "appsflyer", ip="not an ip")
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_ip is None


def test_refused_key_does_not_record_a_use(admin_user):
    key, raw = make_key()
    keys.revoke_import_key(key=key, actor=admin_user)
    refusal(raw)
    key.refresh_from_db()
    assert key.last_used_at is None


# Revocation


def test_revoking_records_who_and_when_and_is_audited(admin_user):
    key, _ = make_key()
    keys.revoke_import_key(key=key, actor=admin_user, ip="203.0.113.9")
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.revoked_by == admin_user
    assert key.status() == "revoked"
    entry = AuditEntry.objects.get(action="import_key.revoked")
    assert entry.target_id == str(key.pk)
    assert entry.ip == "203.0.113.9"


def test_revoking_twice_is_refused_and_audited_once(admin_user):
    key, _ = make_key()
    keys.revoke_import_key(key=key, actor=admin_user)
    stale = ImportKey.objects.get(pk=key.pk)
    with pytest.raises(ValidationError, match="already revoked"):
        keys.revoke_import_key(key=stale, actor=admin_user)
    assert AuditEntry.objects.filter(action="import_key.revoked").count() == 1


# Rotation


def test_rotation_makes_a_new_key_for_the_same_partner_and_name(admin_user):
    old, old_raw = make_key(partner="amplitude", name="Amplitude US")
    new, new_raw = keys.rotate_import_key(key=old, actor=admin_user)
    assert new_raw != old_raw
    assert (new.partner, new.name) == ("amplitude", "Amplitude US")
    assert new.prefix != old.prefix
    assert old.replaced_by == new
    assert old.status() == "rotating"
    assert verify(new_raw, "amplitude") == new
    actions = set(AuditEntry.objects.values_list("action", "target_id"))
    assert ("import_key.rotated", str(old.pk)) in actions
    assert ("import_key.generated", str(new.pk)) in actions


def test_old_key_works_inside_the_grace_window_and_is_refused_after_it(admin_user):
    old, old_raw = make_key()
    before = timezone.now()
    keys.rotate_import_key(key=old, grace=timedelta(hours=2), actor=admin_user)
    after = timezone.now()
    old.refresh_from_db()
    assert before + timedelta(hours=2) <= old.expires_at <= after + timedelta(hours=2)
    verify(old_raw, "appsflyer", now=old.expires_at - timedelta(minutes=1))
    assert refusal(old_raw, now=old.expires_at) == "expired"


def test_default_grace_comes_from_settings(admin_user, settings):
    settings.IMPORT_KEY_ROTATION_GRACE_HOURS = 5
    old, _ = make_key()
    before = timezone.now()
    keys.rotate_import_key(key=old, actor=admin_user)
    assert old.expires_at is not None
    assert old.expires_at - before >= timedelta(hours=5)
    assert old.expires_at - before < timedelta(hours=5, minutes=1)


def test_zero_grace_expires_the_old_key_at_once(admin_user):
    old, old_raw = make_key()
    keys.rotate_import_key(key=old, grace=timedelta(0), actor=admin_user)
    assert refusal(old_raw) == "expired"


def test_rotation_never_extends_an_earlier_expiry(admin_user):
    expires_at = timezone.now() + timedelta(hours=1)
    old, _ = make_key(expires_at=expires_at)
    keys.rotate_import_key(key=old, grace=timedelta(days=7), actor=admin_user)
    assert old.expires_at == expires_at


def test_rotated_key_keeps_the_old_keys_lifetime(admin_user):
    old, _ = make_key(expires_at=timezone.now() + timedelta(days=30))
    before = timezone.now()
    new, _ = keys.rotate_import_key(key=old, actor=admin_user)
    assert new.expires_at is not None
    assert timedelta(days=30) - timedelta(minutes=1) < new.expires_at - before
    assert new.expires_at - before <= timedelta(days=30, minutes=1)


def test_rotating_a_revoked_key_is_refused(admin_user):
    key, _ = make_key()
    keys.revoke_import_key(key=key, actor=admin_user)
    with pytest.raises(ValidationError, match="is revoked and cannot be rotated"):
        keys.rotate_import_key(key=key, actor=admin_user)
    assert ImportKey.objects.count() == 1


def test_rotating_an_expired_key_is_refused(admin_user, monkeypatch):
    expires_at = timezone.now() + timedelta(minutes=5)
    key, _ = make_key(expires_at=expires_at)
    monkeypatch.setattr(timezone, "now", lambda: expires_at + timedelta(seconds=1))
    with pytest.raises(ValidationError, match="is expired and cannot be rotated"):
        keys.rotate_import_key(key=key, actor=admin_user)
    assert ImportKey.objects.count() == 1
    assert not AuditEntry.objects.filter(action="import_key.rotated").exists()


def test_rotating_an_already_rotated_key_is_refused(admin_user):
    key, _ = make_key()
    stale = ImportKey.objects.get(pk=key.pk)
    keys.rotate_import_key(key=key, actor=admin_user)
    with pytest.raises(ValidationError, match="already rotated"):
        keys.rotate_import_key(key=stale, actor=admin_user)
    assert ImportKey.objects.count() == 2


def test_negative_grace_is_refused(admin_user):
    key, _ = make_key()
    with pytest.raises(ValidationError, match="negative"):
        keys.rotate_import_key(key=key, grace=timedelta(hours=-1), actor=admin_user)
    assert ImportKey.objects.count() == 1
