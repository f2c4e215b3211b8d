"""Partner adapters by Connection.kind. Adding one: see the README's checklist."""

from connections.partners.amplitude import Amplitude
from connections.partners.appsflyer import AppsFlyer
from connections.partners.base import Partner
from connections.partners.braze import Braze
from connections.partners.http import PartnerError

PARTNERS: dict[str, type[Partner]] = {
    "braze": Braze,
    "appsflyer": AppsFlyer,
    "amplitude": Amplitude,
}

__all__ = ["PARTNERS", "Partner", "PartnerError"]
