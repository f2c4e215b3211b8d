from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CohortsyncConfig(AppConfig):
    name = "cohortsync"
    verbose_name = "cohortsync"

    def ready(self) -> None:
        from cohortsync.roles import sync_role_groups_after_migrate

        # Keeps the role groups' permissions current when a later app adds permissions.
        post_migrate.connect(sync_role_groups_after_migrate, dispatch_uid="cohortsync.roles")
