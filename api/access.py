"""Finding the object an API path names, with a JSON-friendly 404."""

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404

M = TypeVar("M", bound=Model)


def get_or_404(queryset: "QuerySet[M]", pk: int, label: str) -> M:
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"No {label} has the id {pk}.")
    return found
