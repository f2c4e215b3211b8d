import pytest

from connections.partners import PARTNERS
from connections.partners.base import ConfigError
from connections.partners.http import normalise_endpoint

braze = PARTNERS["braze"]
appsflyer = PARTNERS["appsflyer"]


def test_braze_instances_map_to_their_documented_rest_hosts():
    assert (
        braze.parse_config({"instance": "US-03"}).rest_endpoint == "https://rest.iad-03.braze.com"
    )
    assert braze.parse_config({"instance": "US-10"}).rest_endpoint == "https://rest.us-10.braze.com"
    assert braze.parse_config({"instance": "EU-02"}).rest_endpoint == "https://rest.fra-02.braze.eu"
    assert braze.parse_config({"instance": "AU-01"}).rest_endpoint == "https://rest.au-01.braze.com"


def test_braze_defaults_follow_the_partner_contract():
    config = braze.parse_config({"instance": "US-01"})
    assert config.membership_mode == "array"
    assert config.array_attribute == "cohortsync_cohorts"
    assert config.update_existing_only is True
    assert config.objects_per_request == 75
    assert (config.rate_limit_requests, config.rate_limit_seconds) == (3000, 3)
    assert config.array_cap == 25


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("rest.iad-01.braze.com", "https://rest.iad-01.braze.com"),
        ("https://rest.iad-01.braze.com/", "https://rest.iad-01.braze.com"),
        ("  HTTPS://REST.Example.com  ", "https://rest.example.com"),
        ("https://rest.example.com:8443", "https://rest.example.com:8443"),
    ],
)
def test_custom_endpoints_are_normalised(raw, expected):
    assert normalise_endpoint(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://rest.iad-01.braze.com/users/track", "without a path"),
        ("https://rest.example.com/?a=1", "without a path"),
        ("ftp://rest.example.com", "must look like"),
        ("", "Enter the"),
        ("https://user:pw@rest.example.com", "user name or password"),
        ("https://rest.example.com:notaport", "invalid port"),
    ],
)
def test_bad_custom_endpoints_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(ConfigError, match=message):
        normalise_endpoint(raw)


def test_plain_http_is_refused_unless_insecure_endpoints_are_allowed(settings):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = False
    with pytest.raises(ConfigError, match="must use https"):
        braze.parse_config({"instance": "custom", "custom_endpoint": "http://127.0.0.1:8765"})
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    config = braze.parse_config({"instance": "custom", "custom_endpoint": "http://127.0.0.1:8765"})
    assert config.rest_endpoint == "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"instance": "US-99"}, "instance"),
        ({"instance": "US-01", "membership_mode": "string"}, "membership_mode"),
        ({"instance": "US-01", "array_attribute": "$bad"}, "array_attribute"),
        ({"instance": "US-01", "default_identifier": "user_alias"}, "alias_label"),
        ({"instance": "US-01", "objects_per_request": 100}, "objects_per_request"),
        ({"instance": "US-01", "rate_limit_requests": 0}, "rate_limit_requests"),
        ({"instance": "US-01", "array_cap": 0}, "array_cap"),
        ({"instance": "US-01", "array_cap": 501}, "array_cap"),
        ({"instance": "US-01", "array_cap": "25"}, "array_cap"),
        ({"instance": "US-01", "array_cap": True}, "array_cap"),
    ],
)
def test_invalid_braze_config_names_the_field_at_fault(data, field):
    with pytest.raises(ConfigError) as info:
        braze.parse_config(data)
    assert info.value.field == field


def test_appsflyer_app_ids_are_checked_per_platform():
    assert appsflyer.parse_config({"app_id": "com.example.app", "platform": "android"})
    assert appsflyer.parse_config({"app_id": "id123456789", "platform": "ios"})
    with pytest.raises(ConfigError, match="not an AppsFlyer iOS app id"):
        appsflyer.parse_config({"app_id": "com.example.app", "platform": "ios"})
    with pytest.raises(ConfigError, match="platform must be android or ios"):
        appsflyer.parse_config({"app_id": "com.example.app", "platform": "web"})


def test_one_appsflyer_connection_per_app_is_keyed_by_app_id():
    config = appsflyer.parse_config({"app_id": "com.example.app", "platform": "android"})
    assert appsflyer.account_key(config) == "appsflyer:com.example.app"
    assert braze.account_key(braze.parse_config({"instance": "US-01"})) is None


def test_missing_required_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="Incomplete AppsFlyer config"):
        appsflyer.parse_config({"platform": "android"})


def test_the_braze_array_cap_is_the_workspaces_and_its_shared_array_uses_it():
    config = braze.parse_config({"instance": "US-01", "array_cap": 500})
    assert braze.shared_array(config, {}).cap == 500
    assert braze.shared_array(config, {"membership_mode": "boolean"}) is None
    # Connections saved before the setting existed read the documented default.
    assert braze.shared_array(braze.parse_config({"instance": "US-01"}), None).cap == 25


def test_the_array_cap_field_says_where_braze_shows_the_workspaces_own_and_defaults_when_blank():
    form = braze.config_form(
        data={
            "instance": "US-01",
            "membership_mode": "array",
            "array_attribute": "cohortsync_cohorts",
            "array_cap": "",
            "default_identifier": "external_id",
            "objects_per_request": "75",
            "rate_limit_requests": "3000",
            "rate_limit_seconds": "3",
        }
    )
    assert form.is_valid(), form.errors
    assert braze.parse_config(form.cleaned_data).array_cap == 25
    assert "Data Settings > Custom Attributes" in str(form.fields["array_cap"].help_text)
    too_big = braze.config_form(data={**form.data, "array_cap": "501"})
    assert not too_big.is_valid() and "array_cap" in too_big.errors
