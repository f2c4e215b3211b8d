"""Signals the syncs app sends for apps that react to runs (alerts); with no listener they cost
nothing, and syncs never needs to know who listens."""

from django.dispatch import Signal

# Sent with `run_id` and `status` after a run's final status commits (held included).
run_finished = Signal()

# Sent with `run_id` after a run's verification (syncs/verification.py) commits, done or failed.
run_verified = Signal()
