from django.urls import path

from syncs.views import syncs

app_name = "sync_pages"

urlpatterns = [
    path("", syncs.sync_list, name="sync_list"),
    path("new/", syncs.sync_create, name="sync_create"),
    path("<int:pk>/", syncs.sync_detail, name="sync_detail"),
    path("<int:pk>/run/", syncs.sync_run_now, name="sync_run_now"),
    path("<int:pk>/runs/<int:run_pk>/", syncs.run_detail, name="run_detail"),
    path("<int:pk>/runs/<int:run_pk>/progress/", syncs.run_progress, name="run_progress"),
    path("<int:pk>/pause/", syncs.sync_pause, name="sync_pause"),
    path("<int:pk>/resume/", syncs.sync_resume, name="sync_resume"),
    path("<int:pk>/resync/", syncs.sync_resync, name="sync_resync"),
    path("<int:pk>/delete/", syncs.sync_delete, name="sync_delete"),
    path("<int:pk>/runs/<int:run_pk>/cancel/", syncs.run_cancel, name="run_cancel"),
    path("<int:pk>/runs/<int:run_pk>/approve/", syncs.run_approve, name="run_approve"),
    path("<int:pk>/runs/<int:run_pk>/reject/", syncs.run_reject, name="run_reject"),
]
