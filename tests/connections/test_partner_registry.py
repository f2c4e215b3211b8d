"""Every registered partner declares what the rest of the house asks of it (so nothing outside
its package branches on its kind), and the README and docs/ say how to find it."""

from pathlib import Path

import pytest
from django import forms

from cohorts.models import EXTRA_IDENTIFIERS, IdType
from connections.models import Connection
from connections.partners import PARTNERS
from connections.partners.base import Direction, Partner, PartnerConfig, SyncOptionsForm

ROOT = Path(__file__).resolve().parents[2]
MEMBER_IDENTIFIERS = {*IdType.values, *EXTRA_IDENTIFIERS}


DESTINATIONS = sorted(k for k, p in PARTNERS.items() if Direction.DESTINATION in p.directions)


@pytest.fixture(params=sorted(PARTNERS))
def partner(request: pytest.FixtureRequest, settings) -> type[Partner]:
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    return PARTNERS[request.param]


@pytest.fixture(params=DESTINATIONS)
def destination(request: pytest.FixtureRequest, settings) -> type[Partner]:
    """What a sync asks of its partner: only destinations are asked (a source takes nothing)."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    return PARTNERS[request.param]


def test_the_registry_and_the_connection_kinds_agree():
    assert set(PARTNERS) == set(Connection.Kind.values)
    assert all(partner.kind == kind for kind, partner in PARTNERS.items())


def test_a_partner_names_and_describes_itself(partner):
    assert partner.label and partner.credential_label
    assert partner.description and not partner.description.endswith(".")
    assert partner.directions and partner.directions <= set(Direction)


def test_a_partner_owns_its_settings_and_sync_options(partner):
    assert issubclass(partner.config_form, forms.Form)
    assert issubclass(partner.config_class, PartnerConfig)
    assert issubclass(partner.sync_options_form, SyncOptionsForm)
    config = partner.parse_config(partner.simulator_config("http://127.0.0.1:9"))
    assert isinstance(config, partner.config_class)
    assert partner.clean_sync_options(config, {}, current=None) is not None


def test_a_destination_declares_its_identifiers_and_defaults(destination):
    partner = destination
    config = partner.parse_config(partner.simulator_config("http://127.0.0.1:9"))
    assert partner.identifiers and set(partner.identifiers) <= MEMBER_IDENTIFIERS
    assert partner.default_identifier(config) in partner.allowed_identifiers(config)
    assert partner.unavailable_reason(config, "no such identifier")
    if partner.membership_modes:
        assert partner.default_membership_mode(config) in partner.membership_modes


def test_a_destination_declares_its_pace(destination):
    partner = destination
    config = partner.parse_config(partner.simulator_config("http://127.0.0.1:9"))
    rate = partner.rate_limit(config)
    assert rate.requests > 0 and rate.seconds > 0
    assert partner(config, "").max_batch_size() > 0


def test_a_partner_says_what_a_member_written_costs_in_data_points(partner):
    config = partner.parse_config(partner.simulator_config("http://127.0.0.1:9"))
    cost = partner.data_points_per_object(config, {})
    assert cost is None or (isinstance(cost, int) and cost > 0)
    shared = partner.shared_array(config, {})
    assert shared is None or (shared.attribute and shared.cap > 0)


@pytest.mark.parametrize(
    "kind", sorted(k for k, p in PARTNERS.items() if Direction.DESTINATION not in p.directions)
)
def test_a_source_takes_no_identifier_and_no_sync_option(kind):
    partner = PARTNERS[kind]
    assert partner.identifiers == ()
    assert not partner.sync_options_form.base_fields


def test_a_partner_names_the_parts_of_its_credential(partner):
    parts = partner.secret_fields()
    assert parts and all(parts.values())
    packed = partner.pack_secret(dict.fromkeys(parts, "part-of-the-credential-1a2b"))
    assert partner.hinted_part(packed).endswith("1a2b")


def test_a_partner_has_simulator_endpoints(partner):
    assert callable(partner.simulator.owns) and callable(partner.simulator.handle)


def test_the_readme_and_the_docs_know_every_partner(partner):
    readme = (ROOT / "README.md").read_text()
    assert f"`connections/partners/{partner.kind}/`" in readme
    assert (ROOT / "docs" / "partners" / f"{partner.kind}.md").exists()


def test_a_partner_that_offers_verification_can_read_members_back(partner):
    reads_back = partner.verify_members is not Partner.verify_members
    assert partner.can_verify == reads_back
