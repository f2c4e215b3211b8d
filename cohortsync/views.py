from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cohortsync.forms import AuditFilterForm
from cohortsync.models import AuditEntry
from cohortsync.roles import role_required


@role_required("cohortsync.view_auditentry")
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries = AuditEntry.objects.all()
    if form.is_valid():
        entries = form.apply(entries)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "cohortsync/audit_log.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )
