"""Security issue #13, finding 2: login throttling per account and per address (django-axes with
core/login_throttle.py). With the default settings (10 failures, 15 minutes) the 11th attempt in
a minute is refused even with the right password: a 429 with a clear message and Retry-After, one
audit entry per lock, and admins unlock on a page or with `manage.py unlock_login`."""

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from core import login_throttle
from core.models import AuditEntry
from core.roles import Role
from tests.base import PASSWORD, make_user

pytestmark = pytest.mark.django_db

EMAIL = "vera@example.com"
LOCKED = "Too many failed logins for this account or from this address."


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    """Every attempt checks a password; the default hasher makes that a third of a second."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def vera():
    return make_user(Role.VIEWER, email=EMAIL)


def log_in(username=EMAIL, password=PASSWORD, ip="198.51.100.7", client=None, **extra):
    client = client or Client()
    response = client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **extra
    )
    return response, client


def logged_in(response):
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


def fail(times, username=EMAIL, ip="198.51.100.7"):
    """`times` wrong passwords; answered with the form again, but the one that reaches the
    limit is already refused as a lock."""
    for _ in range(times):
        response, _ = log_in(username=username, password="wrong password", ip=ip)
        assert response.status_code in (200, 429)
        assert not response.wsgi_request.user.is_authenticated


def assert_locked(response):
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert int(response["Retry-After"]) == 15 * 60
    assert not response.wsgi_request.user.is_authenticated


def test_the_defaults_are_ten_failures_and_fifteen_minutes(settings):
    assert settings.COHORTSYNC_LOGIN_FAILURE_LIMIT == settings.AXES_FAILURE_LIMIT == 10
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]


def test_the_11th_attempt_in_a_minute_is_refused_even_with_the_right_password(vera):
    statuses = [log_in(password=f"wrong {n}")[0].status_code for n in range(10)]
    assert statuses == [200] * 9 + [429]  # the 10th failure starts the lock
    response, _ = log_in()
    assert_locked(response)
    assert "ask an admin to unlock it" in response.content.decode()
    # The form is still there, the email kept.
    assert f'value="{EMAIL}"' in response.content.decode()


def test_nine_failures_still_let_the_right_password_in(vera):
    fail(9)
    response, _ = log_in()
    assert logged_in(response)


def test_an_address_is_locked_whatever_account_it_tries(vera):
    for n in range(10):
        fail(1, username=f"guess{n}@example.com")
    response, _ = log_in()  # vera's own password, from the same address
    assert_locked(response)
    response, _ = log_in(ip="203.0.113.50")  # vera herself, elsewhere, is fine
    assert logged_in(response)


def test_an_account_is_locked_from_every_address(vera):
    for n in range(10):
        fail(1, ip=f"203.0.113.{n + 1}")
    response, _ = log_in(ip="192.0.2.99")
    assert_locked(response)


def test_case_and_spaces_do_not_make_a_new_account_to_guess_at(vera):
    for n, variant in enumerate([EMAIL, EMAIL.upper(), f"  {EMAIL}", "Vera@Example.com"] * 3):
        if n == 10:
            break
        fail(1, username=variant, ip=f"203.0.113.{n + 1}")
    response, _ = log_in(ip="192.0.2.99")
    assert_locked(response)


def test_the_limits_are_settings(vera, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=2)
    fail(3)
    response, _ = log_in()
    assert response.status_code == 429
    assert response["Retry-After"] == "120"
    assert "paused for 2 minutes" in response.content.decode()


def test_a_lock_ends_its_cool_off_after_the_last_attempt(vera):
    fail(10)
    assert log_in()[0].status_code == 429
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )
    assert logged_in(log_in()[0])


def test_a_lock_is_audited_once_however_many_attempts_follow(vera):
    fail(10)
    for _ in range(5):
        assert log_in()[0].status_code == 429
    [entry] = AuditEntry.objects.filter(action="login.locked_out")
    assert entry.actor_label == "system"
    assert (entry.target_type, entry.target_id) == ("user", str(vera.pk))
    assert entry.details == {
        "username": EMAIL,
        "locked": ["account", "address"],
        "failures": 10,
        "minutes": 15,
    }
    assert entry.ip == "198.51.100.7"
    assert PASSWORD not in str(entry.details)


def test_guessing_at_an_account_that_does_not_exist_is_audited_too(db):
    fail(10, username="nobody@example.com")
    [entry] = AuditEntry.objects.filter(action="login.locked_out")
    assert (entry.target_type, entry.details["username"]) == ("login", "nobody@example.com")


def test_no_password_is_stored_with_the_attempts(vera):
    fail(3)
    log_in(password="hunter2-secret")
    assert not [a for a in AccessAttempt.objects.all() if "hunter2" in a.post_data]


def test_an_admin_sees_the_locks_and_unlocks_an_account(vera, admin_client, admin_user):
    fail(10, ip="198.51.100.7")
    page = admin_client.get(reverse("login_lockouts"))
    assert page.status_code == 200
    locks = {(lock.kind, lock.value) for lock in page.context["lockouts"]}
    assert locks == {("account", EMAIL), ("address", "198.51.100.7")}
    assert "Unlock" in page.content.decode()

    response = admin_client.post(
        reverse("login_unlock"), {"kind": "account", "value": EMAIL}, REMOTE_ADDR="192.0.2.1"
    )
    assert response.status_code == 302
    # The account may log in again, from elsewhere; its failures were the address's too.
    assert logged_in(log_in(ip="203.0.113.9")[0])
    [entry] = AuditEntry.objects.filter(action="login.unlocked")
    assert entry.actor == admin_user
    assert entry.details["username"] == EMAIL
    assert entry.ip == "192.0.2.1"


def test_an_admin_unlocks_an_address(vera, admin_client):
    for n in range(10):
        fail(1, username=f"guess{n}@example.com", ip="198.51.100.7")
    assert log_in()[0].status_code == 429
    admin_client.post(reverse("login_unlock"), {"kind": "address", "value": "198.51.100.7"})
    assert logged_in(log_in()[0])


@pytest.mark.parametrize("client_fixture", ["marketer_client", "viewer_client"])
def test_only_admins_see_or_lift_locks(client_fixture, request, vera):
    client = request.getfixturevalue(client_fixture)
    fail(10)
    assert client.get(reverse("login_lockouts")).status_code == 403
    assert (
        client.post(reverse("login_unlock"), {"kind": "account", "value": EMAIL}).status_code == 403
    )
    assert log_in()[0].status_code == 429


def test_the_audit_log_links_to_the_locks_for_admins(admin_client):
    assert reverse("login_lockouts") in admin_client.get(reverse("audit_log")).content.decode()


def test_the_command_lists_and_lifts_locks(vera):
    fail(10)
    out = io.StringIO()
    call_command("unlock_login", stdout=out)
    assert f"account {EMAIL}: 10 failed logins" in out.getvalue()
    assert "address 198.51.100.7: 10 failed logins" in out.getvalue()
    out = io.StringIO()
    call_command("unlock_login", EMAIL.upper(), "--address", "198.51.100.7", stdout=out)
    assert out.getvalue().splitlines() == [
        f"Unlocked {EMAIL.upper()}.",
        "198.51.100.7 had no failed logins to forget.",
    ]
    assert logged_in(log_in()[0])
    assert AuditEntry.objects.filter(action="login.unlocked", actor_label="system").count() == 1
    out = io.StringIO()
    call_command("unlock_login", stdout=out)
    assert out.getvalue().strip() == "No account or address is locked out."


def test_unlock_needs_an_account_or_an_address():
    with pytest.raises(ValueError, match="account or an address"):
        login_throttle.unlock(actor=None)


def test_behind_a_trusted_proxy_each_client_is_its_own_address(vera, settings):
    settings.COHORTSYNC_TRUSTED_PROXIES = 1
    for n in range(10):
        fail_response, _ = log_in(
            username=f"guess{n}@example.com",
            password="wrong",
            ip="10.0.0.1",  # the proxy
            HTTP_X_FORWARDED_FOR=f"1.2.3.4, 198.51.100.{n + 1}",
        )
        assert fail_response.status_code == 200
    # Ten clients behind one proxy: none of them has failed ten times.
    response, _ = log_in(ip="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert logged_in(response)


def test_without_trusted_proxies_x_forwarded_for_is_not_believed(vera):
    for n in range(10):
        log_in(password="wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n + 1}", ip="10.0.0.1")
    response, _ = log_in(ip="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert response.status_code == 429
