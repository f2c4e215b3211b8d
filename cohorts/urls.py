from django.urls import path

from cohorts.views import cohorts, import_requests, pulls, uploads

app_name = "cohorts"

urlpatterns = [
    path("", cohorts.cohort_list, name="cohort_list"),
    path("new/", cohorts.cohort_create, name="cohort_create"),
    path("<int:pk>/", cohorts.cohort_detail, name="cohort_detail"),
    path("<int:pk>/edit/", cohorts.cohort_edit, name="cohort_edit"),
    path("<int:pk>/delete/", cohorts.cohort_delete, name="cohort_delete"),
    path("<int:pk>/members/", cohorts.cohort_members, name="cohort_members"),
    path("<int:pk>/members/change/", cohorts.cohort_change_members, name="cohort_change_members"),
    path("<int:pk>/uploads/new/", uploads.upload_create, name="upload_create"),
    path("<int:pk>/uploads/<int:upload_pk>/", uploads.upload_detail, name="upload_detail"),
    path(
        "<int:pk>/uploads/<int:upload_pk>/progress/",
        uploads.upload_progress,
        name="upload_progress",
    ),
    path(
        "<int:pk>/uploads/<int:upload_pk>/bad-rows.csv",
        uploads.upload_bad_rows,
        name="upload_bad_rows",
    ),
    path("import-requests/", import_requests.import_request_list, name="import_requests"),
    path("sources/<int:connection_pk>/", pulls.source_cohorts, name="source_cohorts"),
    path("sources/<int:connection_pk>/refresh/", pulls.refresh_listing, name="refresh_listing"),
    path("sources/<int:connection_pk>/pull/", pulls.pull_create, name="pull_create"),
    path("pulls/<int:pk>/cadence/", pulls.pull_cadence, name="pull_cadence"),
    path("pulls/<int:pk>/stop/", pulls.pull_stop, name="pull_stop"),
]
