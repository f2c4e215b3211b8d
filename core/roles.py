"""Roles: admin, marketer and viewer are groups with permissions.

A signed-in user with none of them is an outsider and sees 404s; a role without the permission a
view needs gets 403.
"""

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse


class Role(StrEnum):
    ADMIN = "admin"
    MARKETER = "marketer"
    VIEWER = "viewer"


# app_label.codename; a permission that does not exist yet is skipped until its app migrates.
ROLE_PERMISSIONS: dict[Role, list[str]] = {
    Role.ADMIN: [
        "connections.view_connection",
        "connections.manage_connections",
        "connections.view_importkey",
        "connections.manage_import_keys",
        "core.view_auditentry",
        "core.unlock_logins",
        "cohorts.view_cohort",
        "cohorts.manage_cohorts",
        "syncs.view_sync",
        "syncs.manage_syncs",
        "alerts.manage_alerts",
    ],
    Role.MARKETER: [
        "connections.view_connection",
        "cohorts.view_cohort",
        "cohorts.manage_cohorts",
        "syncs.view_sync",
        "syncs.manage_syncs",
    ],
    Role.VIEWER: ["connections.view_connection", "cohorts.view_cohort", "syncs.view_sync"],
}

ROLE_ORDER = [Role.ADMIN, Role.MARKETER, Role.VIEWER]


def user_role(user: AbstractBaseUser | AnonymousUser) -> Role | None:
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    # Cached on the user object: one query per request, however many checks.
    cached: Role | bool | None = getattr(user, "_cohortsync_role", False)
    if cached is not False:
        return cached if isinstance(cached, Role) else None
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    role = next((r for r in ROLE_ORDER if r.value in names), None)
    setattr(user, "_cohortsync_role", role)  # noqa: B010 -- a private cache, not a model field
    return role


def check_access(request: HttpRequest, permission: str | None = None) -> Role:
    """Outsiders get 404 (nothing here exists for them); a role lacking `permission` gets 403."""
    role = user_role(request.user)
    if role is None:
        raise Http404("No such page.")
    if permission is not None and not request.user.has_perm(permission):
        raise PermissionDenied("Your role does not allow this.")
    return role


P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponse)


def role_required(
    permission: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """View decorator: any role may enter when `permission` is None."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            request = args[0]
            assert isinstance(request, HttpRequest)
            check_access(request, permission)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def role_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the user's role, for menus."""
    role = user_role(request.user) if hasattr(request, "user") else None
    return {"user_role": role.value if role else None}


def sync_role_groups(apps: Apps = global_apps) -> None:
    """Create the role groups and give each exactly its permissions. Idempotent."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        perms = []
        for dotted in wanted:
            app_label, codename = dotted.split(".", 1)
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                perms.append(perm)
        group.permissions.set(perms)


def sync_role_groups_after_migrate(sender: Any, **kwargs: Any) -> None:
    # post_migrate fires once per app; by the last app every permission exists.
    if sender is list(global_apps.get_app_configs())[-1]:
        sync_role_groups()


def request_actor(request: HttpRequest) -> User:
    """The signed-in user behind a request that role_required let through."""
    user = request.user
    assert isinstance(user, User)
    return user
