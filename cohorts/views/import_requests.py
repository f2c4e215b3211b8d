"""The log of inbound pushes, for one data-import key (admins) or one cohort (any role); the whole
log (admins) also says how many requests were refused without a genuine key, which are counted
rather than logged (cohorts.inbound.refusals).

The key's page in `connections` loads the `?key=<id>&fragment=1` table with htmx, so that
connections never imports syncs.
"""

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from cohorts.inbound.refusals import refused_since
from cohorts.models import Cohort, ImportRequest
from connections.models import ImportKey
from core.roles import check_access, role_required

MANAGE_KEYS = "connections.manage_import_keys"
PAGE_SIZE = 50
REFUSED_HOURS = 24


def _pk(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise Http404("No such key or cohort.")
    return int(raw)


@role_required("cohorts.view_cohort")
@require_GET
def import_request_list(request: HttpRequest) -> HttpResponse:
    key_pk, cohort_pk = _pk(request.GET.get("key")), _pk(request.GET.get("cohort"))
    # Only admins see key pages, and the whole log names every key.
    if key_pk is not None or cohort_pk is None:
        check_access(request, MANAGE_KEYS)
    requests = ImportRequest.objects.select_related("key", "cohort")
    filters: dict[str, int] = {}
    key = cohort = None
    if key_pk is not None:
        key = get_object_or_404(ImportKey, pk=key_pk)
        requests, filters["key"] = requests.filter(key=key), key.pk
    if cohort_pk is not None:
        cohort = get_object_or_404(Cohort, pk=cohort_pk)
        requests, filters["cohort"] = requests.filter(cohort=cohort), cohort.pk
    page = Paginator(requests, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        # The whole log (admins): what was refused without a genuine key is only counted.
        "refused": refused_since(REFUSED_HOURS) if key is None and cohort is None else None,
        "refused_hours": REFUSED_HOURS,
        "page": page,
        "key": key,
        "cohort": cohort,
        "filter_query": urlencode(filters),
        "can_see_keys": request.user.has_perm(MANAGE_KEYS),
    }
    template = "_table.html" if request.GET.get("fragment") else "list.html"
    return render(request, f"cohorts/import_requests/{template}", context)
