"""What a trait sync takes, checked the same way for the wizard, the edit form and the API
(syncs/services.py calls it before anything is written).

A trait sync writes chosen member properties to a destination that takes traits (Braze) as
custom attributes, addressed by the one identifier the partner names for it (Braze: external
ID, so a profile it does not know yet is created); it removes no one and has no membership to
verify.
"""

from typing import Any

from django.core.exceptions import ValidationError

from cohorts.models import IDENTIFIER_LABELS
from connections.models import Connection
from syncs.engine.traits import TraitsError, parse_traits
from syncs.models import Sync


def validated_traits(
    *,
    connection: Connection,
    kind: object,
    traits: object,
    send_nulls: object,
    identifier_mapping: object,
    verify: object,
    leaving_members: object = Sync.Leaving.KEEP,
) -> dict[str, Any]:
    """The sync's trait fields as saved ({"traits", "send_nulls", "identifier"}); a
    ValidationError naming the field at fault otherwise."""
    if kind not in Sync.Kind.values:
        raise ValidationError({"kind": f"Choose one of: {', '.join(Sync.Kind.values)}."})
    if not isinstance(send_nulls, bool):
        raise ValidationError({"traits_send_nulls": "Send nulls must be true or false."})
    if kind == Sync.Kind.MEMBERSHIP:
        if traits or send_nulls:
            raise ValidationError({"traits": "Only a trait sync sends member traits."})
        return {"traits": [], "send_nulls": False, "identifier": ""}
    partner = connection.partner
    if not partner.takes_traits:
        raise ValidationError(
            {
                "connection": f"{partner.label} does not take member traits: a trait sync "
                "sends them to a destination that does (Braze)."
            }
        )
    identifier = partner.trait_identifier
    if identifier_mapping not in ([], [identifier], None):
        label = IDENTIFIER_LABELS.get(identifier, identifier)
        raise ValidationError({"identifier_mapping": f"A trait sync sends by {label} only."})
    if verify:
        raise ValidationError({"verify": "A trait sync has no membership to verify."})
    if leaving_members != Sync.Leaving.KEEP:
        raise ValidationError(
            {"leaving_members": "A trait sync removes no one: members who leave keep theirs."}
        )
    try:
        parsed = parse_traits(traits, attribute_error=partner.trait_attribute_error)
    except TraitsError as exc:
        raise ValidationError({"traits": str(exc)}) from None
    return {
        "traits": [trait.to_dict() for trait in parsed],
        "send_nulls": send_nulls,
        "identifier": identifier,
    }
