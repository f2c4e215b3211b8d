"""A connection's timeline (syncs.pages.connection_timeline), as a fragment the connection's
page loads with htmx, or as a page of its own for the "Older" link without JavaScript."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from connections.models import Connection
from core.roles import check_access, role_required
from syncs.pages.connection_timeline import BadCursor, Cursor, timeline_page

VIEW_CONNECTION = "connections.view_connection"


@role_required(VIEW_CONNECTION)
@require_GET
def connection_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    # It lists runs too: the reader must be allowed to see syncs.
    check_access(request, "syncs.view_sync")
    connection = get_object_or_404(Connection, pk=pk)
    fragment = bool(request.headers.get("HX-Request"))
    template = "_timeline.html" if fragment else "timeline.html"
    context: dict[str, object] = {"connection": connection}
    before = request.GET.get("before")
    try:
        cursor = Cursor.parse(before) if before else None
    except BadCursor as exc:
        context["error"] = str(exc)
        return render(request, f"syncs/connections/{template}", context, status=400)
    context["page"] = timeline_page(connection, before=cursor)
    return render(request, f"syncs/connections/{template}", context)
