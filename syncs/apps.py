from django.apps import AppConfig


class SyncsConfig(AppConfig):
    name = "syncs"
    verbose_name = "Cohorts and syncs"

    def ready(self) -> None:
        from syncs.membership import cohort_changed
        from syncs.realtime import on_cohort_changed

        cohort_changed.connect(on_cohort_changed, dispatch_uid="syncs.realtime")
