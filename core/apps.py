from django.apps import AppConfig
from django.core.checks import register
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Users, roles and the audit log"

    def ready(self) -> None:
        # Django's way: app modules that touch models load once the registry is ready.
        from core.egress import check_settings
        from core.roles import sync_role_groups_after_migrate

        # A bad COHORTSYNC_EGRESS_ALLOW stops the start, not the first partner call.
        register(check_settings)

        # Keeps the role groups' permissions current when a later app adds permissions.
        post_migrate.connect(sync_role_groups_after_migrate, dispatch_uid="core.roles")

        # The start of a login lock goes to the audit log.
        from axes.signals import user_locked_out

        from core.login_throttle import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="core.login_throttle")
