"""The member lookup page: search an identifier, see its cohorts and where each sync has it, and
every identifier that starts with what was typed (exact matches first, paged). Every role may
look up (it shows identifiers, never secrets)."""

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from cohorts.member_search import SCAN_LIMIT, find_identifiers
from cohorts.models import IDENTIFIER_LABELS, MAX_IDENTIFIER_LENGTH, MEMBER_IDENTIFIERS
from core.roles import check_access, role_required
from syncs.pages.member_lookup import look_up_member

MATCHES_PER_PAGE = 20


class MemberLookupForm(forms.Form):
    q = forms.CharField(
        label="Identifier",
        max_length=MAX_IDENTIFIER_LENGTH,
        help_text="An external ID, device ID, alias name, Braze ID, IDFA…, or its beginning.",
    )
    id_type = forms.ChoiceField(
        label="Type",
        required=False,
        choices=[
            ("", "Any identifier"),
            *((name, IDENTIFIER_LABELS[name]) for name in MEMBER_IDENTIFIERS),
        ],
    )


@role_required("cohorts.view_cohort")
@require_GET
def member_lookup(request: HttpRequest) -> HttpResponse:
    check_access(request, "syncs.view_sync")
    if "q" not in request.GET:
        return render(request, "syncs/members/lookup.html", {"form": MemberLookupForm()})
    form = MemberLookupForm(request.GET)
    if not form.is_valid():
        return render(request, "syncs/members/lookup.html", {"form": form}, status=400)
    value, id_type = form.cleaned_data["q"], form.cleaned_data["id_type"] or None
    found = find_identifiers(value, id_type)
    matches = Paginator(found.matches, MATCHES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "value": value,
        "result": look_up_member(value, id_type),
        "matches": matches,
        "matches_truncated": found.truncated,
        "scan_limit": SCAN_LIMIT,
        "query": urlencode({"q": value, "id_type": id_type or ""}),
    }
    return render(request, "syncs/members/lookup.html", context)
