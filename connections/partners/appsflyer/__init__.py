"""AppsFlyer: a destination. The adapter (partner.py), its settings (config.py), the request body
(payload.py) and its simulator endpoints (simulator.py)."""

from connections.partners.appsflyer.partner import AppsFlyer

__all__ = ["AppsFlyer"]
