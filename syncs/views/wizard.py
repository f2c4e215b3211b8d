"""Creating and editing a sync, one step at a time, ending on a preview of the next run.

Between steps the form travels by GET (answers in hidden fields, see syncs.steps), so a
reload or the browser's Back button shows the same step again; only the last step POSTs, to
create_sync or update_sync, which validate everything once more. Marketers and admins only.
"""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from connections.models import Connection
from core.audit import client_ip
from core.roles import request_actor, role_required
from syncs import cadence as cadences
from syncs.array_cap import array_cap_warning
from syncs.forms import (
    LEAVING_HELP,
    IdentifierStep,
    cadence_of,
    identifier_label,
    mapping_of,
    options_of,
    verification_of,
)
from syncs.models import Sync
from syncs.pages.preview import identifier_coverage, preview_new_sync, preview_sync_change
from syncs.services import create_sync, update_sync
from syncs.steps import SAME_PLACE, STEP_TITLES, Walk, answers_of_sync, steps_for, walk
from syncs.views.trait_wizard import trait_preview_context, traits_step_context

MANAGE = "syncs.manage_syncs"


def _requested_step(request: HttpRequest, steps: tuple[str, ...]) -> str:
    if request.method == "POST":
        return steps[-1]
    step = request.GET.get("step", "")
    # The destination step's Next names the step after it before the kind is chosen: the
    # identifier step and a trait sync's properties step stand in the same place.
    step = SAME_PLACE.get(step, step) if step not in steps else step
    return step if step in steps else steps[0]


@role_required(MANAGE)
def sync_create(request: HttpRequest) -> HttpResponse:
    submitted = request.method == "POST"
    data = request.POST if submitted else request.GET
    steps = steps_for(data.get("kind"), editing=False)
    target = _requested_step(request, steps)
    state = walk(steps, data, target=target, fixed={}, submitted=submitted)
    if submitted and not state.failed:
        answers = state.answers
        try:
            sync = create_sync(
                name=answers["name"],
                cohort=answers["cohort"],
                connection=answers["connection"],
                cadence=cadence_of(answers),
                **(_trait_settings(answers) if _is_traits(answers) else _membership(answers)),
                actor=request_actor(request),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            state.add_service_errors(exc)
        else:
            messages.success(request, f"Sync {sync.name} created. Press Run now to send it.")
            return redirect("syncs:sync_detail", pk=sync.pk)
    return _render(request, state, None)


@role_required(MANAGE)
def sync_edit(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync.objects.select_related("cohort", "connection"), pk=pk)
    try:
        sync.connection.get_config()
    except ValueError as exc:
        messages.error(request, f"{sync.connection.name} needs an admin first: {exc}")
        return redirect("syncs:sync_detail", pk=sync.pk)
    submitted = request.method == "POST"
    data: Any = request.POST if submitted else request.GET
    if not submitted and "step" not in request.GET:
        data = answers_of_sync(sync)
    fixed = {"cohort": sync.cohort, "connection": sync.connection, "kind": sync.kind}
    steps = steps_for(sync.kind, editing=True)
    target = _requested_step(request, steps)
    state = walk(steps, data, target=target, fixed=fixed, submitted=submitted)
    if submitted and not state.failed:
        try:
            update_sync(
                sync=sync,
                actor=request_actor(request),
                ip=client_ip(request),
                **_changes(sync, state.answers),
            )
        except ValidationError as exc:
            state.add_service_errors(exc)
        else:
            messages.success(request, f"Sync {state.answers['name'].strip()} saved.")
            return redirect("syncs:sync_detail", pk=sync.pk)
    return _render(request, state, sync)


def _is_traits(answers: dict[str, Any]) -> bool:
    return answers.get("kind") == Sync.Kind.TRAITS


def _membership(answers: dict[str, Any]) -> dict[str, Any]:
    """A membership sync's own settings among the answers, as the services take them."""
    return {
        "identifier_mapping": mapping_of(answers),
        "leaving_members": answers["leaving_members"],
        "mass_removal_threshold_pct": answers["mass_removal_threshold_pct"],
        "options": options_of(answers, answers["connection"]),
        **verification_of(answers, answers["connection"]),
    }


def _trait_settings(answers: dict[str, Any]) -> dict[str, Any]:
    """A trait sync's own settings among the answers (its identifier is the partner's)."""
    return {
        "kind": Sync.Kind.TRAITS,
        "identifier_mapping": [answers["connection"].partner.trait_identifier],
        "traits": answers["traits"],
        "traits_send_nulls": answers["traits_send_nulls"],
    }


def _changes(sync: Sync, answers: dict[str, Any]) -> dict[str, Any]:
    cadence = cadence_of(answers)
    if cadence["kind"] == "hourly" and sync.cadence.get("kind") == "hourly":
        # The form has no minute: an hourly sync stays at the minute it runs at.
        cadence = sync.cadence
    if sync.is_traits:
        return {
            "name": answers["name"],
            "cadence": cadence,
            "traits": answers["traits"],
            "traits_send_nulls": answers["traits_send_nulls"],
        }
    return {"name": answers["name"], "cadence": cadence, **_membership(answers)}


def _render(request: HttpRequest, state: Walk, sync: Sync | None) -> HttpResponse:
    steps = state.steps
    index = steps.index(state.step)
    base = reverse("syncs:sync_edit", args=[sync.pk]) if sync else reverse("syncs:sync_create")
    context: dict[str, Any] = {
        "state": state,
        "form": state.form,
        "sync": sync,
        "action": base,
        "nav": [
            (
                STEP_TITLES[step],
                f"{base}?{state.query_for(step)}" if n < index else None,
                n == index,
            )
            for n, step in enumerate(steps)
        ],
        "next_step": steps[index + 1] if index + 1 < len(steps) else None,
        "next_title": STEP_TITLES[steps[index + 1]] if index + 1 < len(steps) else "",
        "back_step": steps[index - 1] if index else None,
        "back_url": f"{base}?{state.query_for(steps[index - 1])}" if index else None,
        **state.answers,
    }
    if state.step == "identifier":
        context.update(_identifier_context(state))
    elif state.step == "traits":
        context.update(traits_step_context(state, sync))
    elif state.step == "cadence":
        context["leaving_help"] = LEAVING_HELP
    elif state.step == "preview" and _is_traits(state.answers):
        context.update(trait_preview_context(state, sync))
    elif state.step == "preview":
        context.update(_preview_context(state, sync))
    return render(request, f"syncs/syncs/wizard/{state.step}.html", context)


def _identifier_context(state: Walk) -> dict[str, Any]:
    form = state.form
    assert isinstance(form, IdentifierStep)
    coverage = identifier_coverage(state.answers["cohort"].pk)
    return {
        "coverage": coverage,
        "identifier_options": form.identifier_options(coverage),
        "chosen_primary": form["primary_identifier"].value() or "",
        "chosen_fallback": form["fallback_identifier"].value() or "",
        "option_fields": [form[name] for name in form.option_names],
    }


def _preview_context(state: Walk, sync: Sync | None) -> dict[str, Any]:
    answers = state.answers
    cohort, connection = answers["cohort"], answers["connection"]
    mapping, options = mapping_of(answers), options_of(answers, answers["connection"])
    if sync is None:
        preview = preview_new_sync(
            cohort_id=cohort.pk,
            connection=connection,
            mapping=mapping,
            threshold_pct=answers["mass_removal_threshold_pct"],
            options=options,
        )
    else:
        preview = preview_sync_change(
            sync=sync,
            mapping=mapping,
            leaving_members=answers["leaving_members"],
            threshold_pct=answers["mass_removal_threshold_pct"],
            options=options,
        )
    if not state.form.is_bound and not state.form.initial.get("name"):
        state.form.initial["name"] = f"{cohort.name} → {connection.name}"
    return {
        "preview": preview,
        "mapping_text": " → ".join(identifier_label(name, connection) for name in mapping),
        "cadence_text": cadences.describe(cadences.parse_cadence(cadence_of(answers))),
        "leaving_text": Sync.Leaving(answers["leaving_members"]).label,
        "mode_text": _mode_text(connection, options),
        "verification": verification_of(answers, connection),
        "cap_warning": array_cap_warning(
            connection=connection,
            cohort=cohort,
            options=options,
            exclude_sync_id=sync.pk if sync else None,
            current=sync.options if sync else None,
        ),
    }


def _mode_text(connection: Connection, options: dict[str, Any]) -> str:
    partner = connection.partner
    if not partner.membership_modes:
        return ""
    mode = partner.membership_mode(connection.get_config(), options)
    source = "this sync's choice" if options.get("membership_mode") else "the connection's"
    return f"{partner.membership_modes[mode]} ({source})"
