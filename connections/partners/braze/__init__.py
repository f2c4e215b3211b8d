"""Braze: a destination. The adapter (partner.py), its settings (config.py), the request body
(payload.py), the array cap rule (array_cap.py) and its simulator endpoints (simulator.py)."""

from connections.partners.braze.partner import Braze

__all__ = ["Braze"]
