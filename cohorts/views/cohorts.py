"""Cohort pages: any role reads; marketers and admins create, rename, change members, delete."""

import re
from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from cohorts import services
from cohorts.forms import ChangeMembersForm, CohortNameForm, CohortSearchForm, MemberSearchForm
from cohorts.membership import ChangeCounts, size_history
from cohorts.models import EXTRA_IDENTIFIERS, AmplitudePull, Cohort, CohortMember
from core.audit import client_ip
from core.charts import StepChart, step_chart
from core.roles import request_actor, role_required

VIEW = "cohorts.view_cohort"
MANAGE = "cohorts.manage_cohorts"
PAGE_SIZE = 50


@role_required(VIEW)
def cohort_list(request: HttpRequest) -> HttpResponse:
    form = CohortSearchForm(request.GET or None)
    # The syncs' names through the relation: cohorts never import syncs.
    named_syncs = Cohort.syncs.field.model._default_manager.only("id", "name", "cohort_id")
    cohorts = Cohort.objects.prefetch_related(
        Prefetch("syncs", queryset=named_syncs, to_attr="sync_list")
    )
    q = form.cleaned_data["q"] if form.is_valid() else ""
    if q:
        cohorts = cohorts.filter(name__icontains=q)
    page = Paginator(cohorts, PAGE_SIZE).get_page(request.GET.get("page"))
    query = f"q={quote(q)}" if q else ""  # what the pager's links keep besides the page
    return render(
        request, "cohorts/list.html", {"form": form, "page": page, "q": q, "query": query}
    )


@role_required(MANAGE)
def cohort_create(request: HttpRequest) -> HttpResponse:
    form = CohortNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            cohort = services.create_cohort(
                name=form.cleaned_data["name"], actor=request_actor(request), ip=client_ip(request)
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Cohort {cohort.name} created. Add its members next.")
            return redirect("cohorts:cohort_detail", pk=cohort.pk)
    return render(request, "cohorts/form.html", {"form": form, "cohort": None})


def _size_chart(cohort: Cohort) -> StepChart | None:
    history = [(timezone.localtime(at), count) for at, count in size_history(cohort.pk)]
    return step_chart(history, end=timezone.localtime())


@role_required(VIEW)
def cohort_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cohort = get_object_or_404(Cohort, pk=pk)
    uploads = list(cohort.uploads.all()[:10])
    context = {
        "cohort": cohort,
        "chart": _size_chart(cohort),
        "import_requests": cohort.import_requests.select_related("key")[:20],
        "uploads": uploads,
        "latest_upload": uploads[0] if uploads else None,
        "syncs": cohort.syncs.select_related("connection"),
        "search_form": MemberSearchForm(),
        "pull": AmplitudePull.objects.filter(cohort=cohort).select_related("connection").first(),
    }
    return render(request, "cohorts/detail.html", context)


@role_required(MANAGE)
def cohort_edit(request: HttpRequest, pk: int) -> HttpResponse:
    cohort = get_object_or_404(Cohort, pk=pk)
    form = CohortNameForm(request.POST or None, initial={"name": cohort.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.rename_cohort(
                cohort=cohort,
                name=form.cleaned_data["name"],
                actor=request_actor(request),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Cohort renamed to {cohort.name}.")
            return redirect("cohorts:cohort_detail", pk=cohort.pk)
    return render(request, "cohorts/form.html", {"form": form, "cohort": cohort})


@role_required(MANAGE)
def cohort_delete(request: HttpRequest, pk: int) -> HttpResponse:
    cohort = get_object_or_404(Cohort, pk=pk)
    if request.method == "POST":
        try:
            services.delete_cohort(
                cohort=cohort, actor=request_actor(request), ip=client_ip(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Cohort {cohort.name} deleted.")
            return redirect("cohorts:cohort_list")
    syncs = list(cohort.syncs.select_related("connection"))
    return render(request, "cohorts/confirm_delete.html", {"cohort": cohort, "syncs": syncs})


def _member_page(cohort: Cohort, q: str, after: int) -> tuple[list[CohortMember], int | None]:
    """One page of members in id order after `after`, and where the next page starts.

    Keyset paging on (cohort, id): no COUNT over a cohort that may hold millions of members.
    """
    members = CohortMember.objects.filter(cohort=cohort, id__gt=after).order_by("id")
    if q:
        match = Q(value__startswith=q)  # the exact value is a prefix of itself
        for name in EXTRA_IDENTIFIERS:
            match |= Q(**{name: q})
        members = members.filter(match)
    rows = list(members[: PAGE_SIZE + 1])
    next_after = rows[PAGE_SIZE - 1].pk if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], next_after


def _extras(member: CohortMember) -> list[tuple[str, str]]:
    return [(name, value) for name in EXTRA_IDENTIFIERS if (value := getattr(member, name))]


def _after(request: HttpRequest) -> int:
    """The keyset cursor: members after this id. Anything else starts at the beginning."""
    after = request.GET.get("after", "")
    return int(after) if re.fullmatch(r"[0-9]{1,18}", after) else 0


@role_required(VIEW)
def cohort_members(request: HttpRequest, pk: int) -> HttpResponse:
    cohort = get_object_or_404(Cohort, pk=pk)
    form = MemberSearchForm(request.GET if request.GET.get("q") else None)
    members: list[CohortMember] = []
    next_after = None
    q = ""
    if not form.is_bound or form.is_valid():
        q = form.cleaned_data["q"] if form.is_bound else ""
        members, next_after = _member_page(cohort, q, _after(request))
    context = {
        "cohort": cohort,
        "form": form,
        "q": q,
        "members": [(member, _extras(member)) for member in members],
        "next_after": next_after,
        "paged": _after(request) > 0,
    }
    return render(request, "cohorts/members.html", context)


def _counts_message(counts: ChangeCounts, *, removed: bool) -> str:
    def people(n: int, one: str, many: str) -> str:
        return f"{n:,} {one if n == 1 else many}"

    if removed:
        text = f"Removed {counts.removed:,}"
        ignored = people(counts.ignored, "was not a member", "were not members")
    else:
        text = f"Added {counts.added:,}"
        ignored = people(counts.ignored, "was already a member", "were already members")
    return f"{text}, {ignored}." if counts.ignored else f"{text}."


@role_required(MANAGE)
def cohort_change_members(request: HttpRequest, pk: int) -> HttpResponse:
    cohort = get_object_or_404(Cohort, pk=pk)
    form = ChangeMembersForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Enter in a text field submits with the first button, which is Add.
        remove = request.POST.get("action") == "remove"
        data = form.cleaned_data
        try:
            counts = services.change_members(
                cohort=cohort,
                id_type=data["id_type"],
                alias_label=data["alias_label"],
                text=data["text"],
                remove=remove,
                actor=request_actor(request),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _counts_message(counts, removed=remove))
            return redirect("cohorts:cohort_detail", pk=cohort.pk)
    return render(request, "cohorts/change_members.html", {"cohort": cohort, "form": form})
