"""Amplitude: a source. The adapter (partner.py), its settings (config.py) and its simulator
endpoints (simulator.py). Cohorts it pushes arrive at cohorts/inbound/amplitude/."""

from connections.partners.amplitude.partner import Amplitude

__all__ = ["Amplitude"]
