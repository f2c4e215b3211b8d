from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from django.core.checks import register

        from alerts.checks import check_site_url

        # `check --deploy` warns while alert links would point at localhost (alerts.W001).
        register(check_site_url, deploy=True)

        # alerts listens to syncs and connections; they never import alerts.
        from alerts.receivers import (
            on_connection_state_changed,
            on_run_finished,
            on_run_verified,
        )
        from connections.signals import connection_state_changed
        from syncs.signals import run_finished, run_verified

        run_finished.connect(on_run_finished, dispatch_uid="alerts.run_finished")
        run_verified.connect(on_run_verified, dispatch_uid="alerts.run_verified")
        connection_state_changed.connect(
            on_connection_state_changed, dispatch_uid="alerts.connection_state_changed"
        )
