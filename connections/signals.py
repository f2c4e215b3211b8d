"""Signals the connections app sends for apps that react to connection health (alerts); with no
listener they cost nothing, and connections never needs to know who listens."""

from django.dispatch import Signal

# Sent with `connection_id` and `state` (the new one) after a change of state commits.
connection_state_changed = Signal()
