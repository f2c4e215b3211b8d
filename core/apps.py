from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Users, roles and the audit log"

    def ready(self) -> None:
        # Django's way: app modules that touch models load once the registry is ready.
        from core.roles import sync_role_groups_after_migrate

        # Keeps the role groups' permissions current when a later app adds permissions.
        post_migrate.connect(sync_role_groups_after_migrate, dispatch_uid="core.roles")
