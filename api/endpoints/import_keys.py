"""Data-import keys (admins: create, list, revoke)."""

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Query, Router, Status

from api.access import get_or_404
from api.auth import TokenAuth, actor
from api.pagination import PageQuery, page_of
from api.schemas import Id, ImportKeyCreatedOut, ImportKeyCreateIn, ImportKeyOut, Page
from connections import keys
from connections.key_forms import ImportKeyForm
from connections.models import ImportKey
from core.audit import client_ip

MANAGE_KEYS = "connections.manage_import_keys"

router = Router()


@router.get(
    "/import-keys", response=Page[ImportKeyOut], tags=["import keys"], auth=TokenAuth(MANAGE_KEYS)
)
def list_import_keys(request: HttpRequest, page: Query[PageQuery]) -> dict[str, Any]:
    """Every data-import key, newest first, with its status. Admins only."""
    return page_of(ImportKey.objects.all(), page)


@router.post(
    "/import-keys",
    response={201: ImportKeyCreatedOut},
    tags=["import keys"],
    auth=TokenAuth(MANAGE_KEYS),
)
def create_import_key(request: HttpRequest, payload: ImportKeyCreateIn) -> Status[Any]:
    """Generate a key for a partner. The answer carries the key itself, the only time it is
    shown: only its hash is stored."""
    user = actor(request)
    form = ImportKeyForm(data=payload.model_dump(exclude_none=True))
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    key, raw_key = keys.generate_import_key(
        partner=form.cleaned_data["partner"],
        name=form.cleaned_data["name"],
        expires_at=form.expires_at(),
        actor=user,
        ip=client_ip(request),
    )
    return Status(201, {"key": raw_key, "import_key": key})


@router.post(
    "/import-keys/{key_id}/revoke",
    response=ImportKeyOut,
    tags=["import keys"],
    auth=TokenAuth(MANAGE_KEYS),
)
def revoke_import_key(request: HttpRequest, key_id: Id) -> ImportKey:
    """Refuse the key from the very next request."""
    user = actor(request)
    key = get_or_404(ImportKey.objects.all(), key_id, "data-import key")
    return keys.revoke_import_key(key=key, actor=user, ip=client_ip(request))
