"""Deleting a connection: its syncs' members are left in the destination or removed first.

Served by syncs because it drives syncs' cleanup runs; connections never imports syncs.
"""

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from connections.forms import ConfirmDeleteForm
from connections.models import Connection
from core.audit import client_ip
from core.roles import request_actor, role_required
from syncs import connection_removal as removal

MANAGE = "connections.manage_connections"


class RemoveConnectionForm(ConfirmDeleteForm):
    cleanup = forms.ChoiceField(
        choices=[
            (removal.LEAVE, "Leave the members in the destination and delete now"),
            (
                removal.REMOVE,
                "Remove everything its syncs put in the destination, then delete",
            ),
        ],
        widget=forms.RadioSelect,
        label="What its syncs put in the destination",
        required=False,
    )

    def __init__(self, *args: Any, has_syncs: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_syncs = has_syncs

    def clean_cleanup(self) -> str:
        choice: str = self.cleaned_data.get("cleanup") or ""
        if not choice and self.has_syncs:
            raise forms.ValidationError("Choose what happens to what its syncs sent.")
        return choice or removal.LEAVE


@role_required(MANAGE)
def connection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    connection = Connection.objects.filter(pk=pk).first()
    if connection is None:
        if request.htmx:  # type: ignore[attr-defined]
            # The progress page asks while its last cleanup run deletes the connection: say so
            # (a 404 would leave the page polling, and reading "Running", for ever).
            return render(request, "syncs/connections/_removed.html")
        raise Http404("No such connection.")
    syncs = removal.syncs_in_destination(connection)
    form = RemoveConnectionForm(request.POST or None, connection=connection, has_syncs=bool(syncs))
    if request.method == "POST" and form.is_valid():
        name = connection.name
        try:
            deleted = removal.remove_connection(
                connection=connection,
                cleanup=form.cleaned_data["cleanup"],
                actor=request_actor(request),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if deleted:
                messages.success(request, f"Connection {name} deleted.")
                return redirect("connections:list")
            # The page it goes to shows the removal's progress: no message to outlive it.
            return redirect("connection_delete", pk=pk)
    return render(
        request,
        "syncs/connections/delete.html",
        {
            "connection": connection,
            "form": form,
            "syncs": syncs,
            "under_way": removal.removal_under_way(connection),
        },
    )


@require_POST
@role_required(MANAGE)
def connection_delete_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    try:
        removal.cancel_connection_removal(
            connection=connection, actor=request_actor(request), ip=client_ip(request)
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(
            request, f"{connection.name} is kept. Its syncs stay paused until you resume them."
        )
    return redirect("connections:detail", pk=pk)
