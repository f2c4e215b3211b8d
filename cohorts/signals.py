"""Signals the cohorts app sends for apps that react to cohorts; cohorts never imports them."""

from django.dispatch import Signal

# Sent with `cohort_id` after a membership change commits. Real-time syncs listen (in syncs) to
# start a run; with no listener it costs nothing.
cohort_changed = Signal()
