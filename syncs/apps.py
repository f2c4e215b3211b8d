from django.apps import AppConfig


class SyncsConfig(AppConfig):
    name = "syncs"
    verbose_name = "Syncs and their runs"

    def ready(self) -> None:
        # Django's way: receivers that touch models load once the registry is ready.
        from cohorts.signals import cohort_changed
        from syncs import connection_removal, verification
        from syncs.scheduling import realtime
        from syncs.signals import run_finished

        cohort_changed.connect(realtime.on_cohort_changed, dispatch_uid="syncs.realtime")
        run_finished.connect(realtime.on_run_finished, dispatch_uid="syncs.realtime.follow_up")
        run_finished.connect(
            connection_removal.on_run_finished, dispatch_uid="syncs.connection_removal"
        )
        run_finished.connect(verification.on_run_finished, dispatch_uid="syncs.verification")
