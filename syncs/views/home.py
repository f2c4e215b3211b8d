from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cohortsync.roles import role_required
from connections.models import Connection


@role_required()
def home(request: HttpRequest) -> HttpResponse:
    connections = list(Connection.objects.all())
    attention = [c for c in connections if c.state == Connection.State.NEEDS_ATTENTION]
    return render(
        request, "cohortsync/home.html", {"connections": connections, "attention": attention}
    )
