"""The Braze-compatible cohort-import API and the Amplitude Cohort Webhooks endpoint, mounted at
/partners/ (no session, no CSRF)."""

from django.urls import path

from cohorts.inbound import views as inbound
from cohorts.inbound.amplitude import views as amplitude

urlpatterns = [
    path("amplitude/webhook", amplitude.receive_batch, name="amplitude_webhook"),
    path("<str:partner>/cohorts", inbound.upsert_cohort, name="inbound_cohorts"),
    path("<str:partner>/cohorts/users", inbound.change_cohort_users, name="inbound_cohort_users"),
]
