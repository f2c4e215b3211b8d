from django.apps import AppConfig


class CohortsyncConfig(AppConfig):
    """The project package: settings, urls, cron, the stack runner and the demo seed."""

    name = "cohortsync"
    verbose_name = "cohortsync"
