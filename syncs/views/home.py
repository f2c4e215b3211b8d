"""The home page: what needs attention first, then every sync with its latest outcome, and the
members added and removed per day across all syncs. Its query count does not depend on how
many syncs, runs or problems there are."""

from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from connections.models import Connection
from core.roles import role_required
from syncs.models import Sync, SyncRun
from syncs.pages.attention import find_attention
from syncs.pages.charts import BarChart, daily_changes_chart

SYNCS_PER_PAGE = 50
CHART_DAYS = 30
CHART_CACHE_SECONDS = 60


def daily_totals(*, today: date, days: int) -> dict[date, tuple[int, int]]:
    """Members added and removed per day (of the finish, in the current time zone): one query."""
    since = timezone.make_aware(datetime.combine(today - timedelta(days=days - 1), time.min))
    rows = (
        SyncRun.objects.filter(finished_at__gte=since)
        .annotate(day=TruncDate("finished_at"))
        .values("day")
        .annotate(added=Sum("added"), removed=Sum("removed"))
        .order_by()
    )
    return {row["day"]: (row["added"] or 0, row["removed"] or 0) for row in rows}


def _daily_chart() -> BarChart | None:
    """The chart, from totals kept for a minute: the aggregate reads a month of runs, which
    with thousands of syncs is hundreds of thousands of rows, on every view of the home page
    otherwise."""
    today = timezone.localdate()
    key = f"home:daily-totals:{today.isoformat()}:{CHART_DAYS}"
    totals = cache.get(key)
    if totals is None:
        totals = daily_totals(today=today, days=CHART_DAYS)
        cache.set(key, totals, CHART_CACHE_SECONDS)
    return daily_changes_chart(totals, today=today)


@role_required()
def home(request: HttpRequest) -> HttpResponse:
    syncs = Sync.objects.select_related("cohort", "connection")
    page = Paginator(syncs, SYNCS_PER_PAGE).get_page(request.GET.get("page"))
    labels = dict(SyncRun.Status.choices)
    now = timezone.now()
    context = {
        "now": now,
        "attention": find_attention(now=now),
        "page": page,
        "rows": [(sync, labels.get(sync.last_run_status, "")) for sync in page.object_list],
        "chart": _daily_chart(),
        "chart_days": CHART_DAYS,
        # Only a fresh install has no sync: then the page says what to set up first. A source
        # connection is nothing to sync to.
        "has_connections": page.paginator.count > 0 or Connection.objects.destinations().exists(),
    }
    return render(request, "syncs/home.html", context)
