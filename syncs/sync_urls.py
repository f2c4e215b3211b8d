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
]
