"""The trait sync form's pages: its properties step (what the cohort's members carry) and its
preview (what the next run sends, and Braze's data points it uses)."""

from typing import Any

from syncs import cadence as cadences
from syncs.engine.traits import traits_of
from syncs.forms import cadence_of, identifier_label
from syncs.models import Sync
from syncs.pages.trait_preview import PROPERTY_SAMPLE, preview_trait_run, property_catalog
from syncs.steps import Walk
from syncs.trait_forms import traits_of_text


def traits_step_context(state: Walk, sync: Sync | None) -> dict[str, Any]:
    cohort = state.answers["cohort"]
    chosen = [item["property"] for item in (sync.traits if sync else [])]
    typed = state.form["traits"].value() or ""
    chosen += [item["property"] for item in traits_of_text(str(typed)) if item["property"]]
    return {
        "catalog": property_catalog(cohort.pk, also=list(dict.fromkeys(chosen))),
        "property_sample": PROPERTY_SAMPLE,
        "trait_identifier": identifier_label(
            state.answers["connection"].partner.trait_identifier, state.answers["connection"]
        ),
    }


def trait_preview_context(state: Walk, sync: Sync | None) -> dict[str, Any]:
    answers = state.answers
    cohort, connection = answers["cohort"], answers["connection"]
    traits = traits_of(answers["traits"])
    if not state.form.is_bound and not state.form.initial.get("name"):
        state.form.initial["name"] = f"{cohort.name} traits → {connection.name}"
    return {
        "trait_preview": preview_trait_run(
            cohort_id=cohort.pk,
            connection=connection,
            traits=traits,
            send_nulls=answers["traits_send_nulls"],
            sync=sync,
        ),
        "traits_chosen": traits,
        "cadence_text": cadences.describe(cadences.parse_cadence(cadence_of(answers))),
    }
