"""The Braze-compatible cohort-import API, mounted at /partners/ (no session, no CSRF)."""

from django.urls import path

from cohorts.inbound import views as inbound

urlpatterns = [
    path("<str:partner>/cohorts", inbound.upsert_cohort, name="inbound_cohorts"),
    path("<str:partner>/cohorts/users", inbound.change_cohort_users, name="inbound_cohort_users"),
]
