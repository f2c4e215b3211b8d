from django.urls import path

from syncs.views import connection_timeline, runs, syncs
from syncs.views import lifecycle as sync_lifecycle
from syncs.views import wizard as sync_wizard

app_name = "syncs"

urlpatterns = [
    path("", syncs.sync_list, name="sync_list"),
    path("new/", sync_wizard.sync_create, name="sync_create"),
    path("<int:pk>/", syncs.sync_detail, name="sync_detail"),
    path("<int:pk>/edit/", sync_wizard.sync_edit, name="sync_edit"),
    path("<int:pk>/run/", syncs.sync_run_now, name="sync_run_now"),
    path("<int:pk>/runs/<int:run_pk>/", runs.run_detail, name="run_detail"),
    path("<int:pk>/runs/<int:run_pk>/errors.csv", runs.run_errors_csv, name="run_errors_csv"),
    path("<int:pk>/runs/<int:run_pk>/progress/", syncs.run_progress, name="run_progress"),
    path("<int:pk>/pause/", sync_lifecycle.sync_pause, name="sync_pause"),
    path("<int:pk>/resume/", sync_lifecycle.sync_resume, name="sync_resume"),
    path("<int:pk>/resync/", sync_lifecycle.sync_resync, name="sync_resync"),
    path("<int:pk>/delete/", sync_lifecycle.sync_delete, name="sync_delete"),
    path("<int:pk>/runs/<int:run_pk>/cancel/", sync_lifecycle.run_cancel, name="run_cancel"),
    path("<int:pk>/runs/<int:run_pk>/approve/", sync_lifecycle.run_approve, name="run_approve"),
    path("<int:pk>/runs/<int:run_pk>/reject/", sync_lifecycle.run_reject, name="run_reject"),
    path(
        "<int:pk>/runs/<int:run_pk>/retry-failed/",
        sync_lifecycle.run_retry_failed,
        name="run_retry_failed",
    ),
    path(
        "connections/<int:pk>/timeline/",
        connection_timeline.connection_timeline,
        name="connection_timeline",
    ),
]
