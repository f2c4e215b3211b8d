"""Braze: membership written as custom attributes through POST /users/track."""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django import forms

from connections.partners.base import (
    BatchResult,
    Partner,
    RateLimit,
    RateLimitSignal,
    Recipient,
    SharedArray,
    SimulatorEndpoints,
    SyncOptionsForm,
)
from connections.partners.braze import simulator as braze_simulator
from connections.partners.braze.array_cap import ARRAY_MODES
from connections.partners.braze.config import (
    EMPTY_BATCH_MESSAGE,
    IDENTIFIERS,
    LOWER_OBJECT_CAPS,
    MEMBERSHIP_MODES,
    BrazeConfig,
    BrazeConfigForm,
)
from connections.partners.braze.export import build_export_payloads, verified_refs
from connections.partners.braze.payload import (
    build_track_payload,
    build_trait_payload,
    object_errors,
    split_outcome,
)
from connections.partners.braze.redaction import redact_track_request
from connections.partners.http import BatchTooLarge, ObjectsRefused, PartnerError, call
from connections.partners.redaction import RedactedRequest
from core.egress_client import EgressClient

# Braze's 400 for a request over the workspace's objects-per-request cap, which the answer
# does not state (docs/partners/braze.md §2).
TOO_MANY_OBJECTS = "Max Input Length Exceeded"
MAX_ATTRIBUTE_LENGTH = 255
# Fields of a /users/track attributes object that are not custom attributes.
RESERVED_ATTRIBUTES = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "push_token_import"}
)


class BrazeSyncOptions(SyncOptionsForm):
    membership_mode = forms.ChoiceField(
        required=False,
        widget=forms.RadioSelect,
        initial="",
        label="Membership in Braze",
        help_text="How Braze profiles show membership. The connection sets the default; this "
        "sync may use another.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        usual = (
            f"As the connection says: {MEMBERSHIP_MODES[self.config.membership_mode].lower()}"
            if isinstance(self.config, BrazeConfig)
            else "As the connection says"
        )
        field = self.fields["membership_mode"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", usual), *MEMBERSHIP_MODES.items()]


class Braze(Partner):
    kind = "braze"
    label = "Braze"
    description = "Write cohort membership to Braze profiles (/users/track)"
    credential_label = "REST API key"
    config_form = BrazeConfigForm
    config_class = BrazeConfig
    identifiers = tuple(IDENTIFIERS)
    membership_modes = MEMBERSHIP_MODES
    sync_options_form = BrazeSyncOptions
    simulator: ClassVar[SimulatorEndpoints] = braze_simulator
    batch_size_setting = "objects_per_request"
    mixes_adds_and_removes = True
    can_verify = True
    takes_traits = True
    trait_identifier = "external_id"

    config: BrazeConfig

    @classmethod
    def simulator_config(cls, endpoint: str) -> dict[str, Any]:
        return {"instance": "custom", "custom_endpoint": endpoint}

    @classmethod
    def config_facts(cls, config: BrazeConfig) -> list[tuple[str, str]]:
        """The rate limit as one row, and the array attribute only where membership uses it."""
        settings = config.to_dict()
        if config.membership_mode not in ARRAY_MODES:
            del settings["array_attribute"], settings["array_cap"]
        return cls._facts(settings, config)

    @classmethod
    def default_identifier(cls, config: BrazeConfig) -> str:
        return config.default_identifier

    @classmethod
    def default_membership_mode(cls, config: BrazeConfig) -> str:
        return config.membership_mode

    @classmethod
    def rate_limit(cls, config: BrazeConfig) -> RateLimit:
        return RateLimit(config.rate_limit_requests, config.rate_limit_seconds)

    @classmethod
    def applies_every_add(cls, config: BrazeConfig) -> bool:
        return not config.update_existing_only

    @classmethod
    def shared_array(
        cls, config: BrazeConfig, options: Mapping[str, Any] | None
    ) -> SharedArray | None:
        if cls.membership_mode(config, options) not in ARRAY_MODES:
            return None
        return SharedArray(config.array_attribute, config.array_cap)

    @classmethod
    def data_points_per_object(cls, config: BrazeConfig, options: Mapping[str, Any] | None) -> int:
        # Braze bills each custom attribute an object updates (docs/partners/braze.md §13): the
        # array's add or remove is one, the boolean one, both two; adds and removes alike.
        return 2 if cls.membership_mode(config, options) == "both" else 1

    @classmethod
    def redact_request(cls, path: str, body: Any, *, sample: int) -> RedactedRequest:
        return redact_track_request(body, sample=sample)

    @classmethod
    def trait_attribute_error(cls, name: str) -> str | None:
        """Braze's custom attribute names: at most 255 characters (docs/partners/braze.md §5),
        not a field that identifies or steers the object, and not starting with "$" (reserved
        for Braze's own, *our inference* from its SDKs)."""
        if not name:
            return "an attribute needs a name."
        if len(name) > MAX_ATTRIBUTE_LENGTH:
            return f"Braze attribute names are at most {MAX_ATTRIBUTE_LENGTH} characters."
        if name in RESERVED_ATTRIBUTES:
            return f"{name} identifies or steers a Braze profile update: choose another name."
        if name.startswith("$"):
            return 'Braze reserves names starting with "$" for its own attributes.'
        return None

    def check(self) -> str:
        url = f"{self.config.rest_endpoint}/users/track"
        try:
            call("POST", url, secret=self.secret, payload={"attributes": []})
        except PartnerError as exc:
            if exc.status == 400 and EMPTY_BATCH_MESSAGE in exc.message:
                return "Braze accepted the REST API key (users.track permission)."
            raise
        return "Braze accepted the REST API key."

    def verify_members(
        self,
        *,
        cohort_label: str,
        recipients: Sequence[Recipient],
        options: Mapping[str, Any],
    ) -> set[int]:
        """`/users/export/ids`, 50 identifiers a request: a sample of 100 costs 2 of the
        workspace's 250 export requests a minute, a budget apart from /users/track's."""
        mode = self.membership_mode(self.config, options)
        verified: set[int] = set()
        with EgressClient() as client:
            for payload, refs in build_export_payloads(recipients, self.config.alias_label):
                try:
                    response = call(
                        "POST",
                        f"{self.config.rest_endpoint}/users/export/ids",
                        secret=self.secret,
                        payload=payload,
                        client=client,
                    )
                except PartnerError as exc:
                    if exc.status == 403:
                        # The key sends fine; only reading back needs this permission.
                        exc.message = (
                            f"{exc.message}: the REST API key needs the users.export.ids "
                            "permission to verify."
                        )
                    raise
                verified |= verified_refs(
                    response.body,
                    refs,
                    mode=mode,
                    array_attribute=self.config.array_attribute,
                    cohort_label=cohort_label,
                )
        return verified

    def max_batch_size(self) -> int:
        return self.config.objects_per_request

    def send_batch(
        self,
        *,
        cohort_label: str,
        add: Sequence[Recipient],
        remove: Sequence[Recipient],
        options: Mapping[str, Any],
        client: EgressClient | None = None,
    ) -> BatchResult:
        """One `/users/track` request; objects Braze rejects by index fail, the rest pass."""
        size = len(add) + len(remove)
        if size > self.config.objects_per_request:
            # Braze would refuse the whole request with 400 "Max Input Length Exceeded".
            raise ValueError(
                f"{size} recipients exceed Braze's {self.config.objects_per_request} per request."
            )
        if size == 0:
            return BatchResult(accepted=[], failed=[], requests=0, status=0)
        if any(recipient.attributes is not None for recipient in add):
            if remove:
                raise ValueError("A trait batch removes no one.")
            payload, refs = build_trait_payload(add, default_alias_label=self.config.alias_label)
            return self._track(payload, refs, client)
        payload, refs = build_track_payload(
            cohort_label=cohort_label,
            add=add,
            remove=remove,
            mode=str(options.get("membership_mode", self.config.membership_mode)),
            array_attribute=self.config.array_attribute,
            update_existing_only=self.config.update_existing_only,
            default_alias_label=self.config.alias_label,
        )
        return self._track(payload, refs, client)

    def _track(
        self, payload: dict[str, Any], refs: list[int], client: EgressClient | None
    ) -> BatchResult:
        try:
            response = call(
                "POST",
                f"{self.config.rest_endpoint}/users/track",
                secret=self.secret,
                payload=payload,
                client=client,
            )
        except PartnerError as exc:
            raise _refusal(exc, refs) from None
        accepted, failed = split_outcome(response.body, refs)
        return BatchResult(
            accepted=accepted,
            failed=failed,
            requests=1,
            status=response.status,
            rate_limit=RateLimitSignal.from_headers(response.headers),
        )


def _refusal(exc: PartnerError, refs: list[int]) -> PartnerError:
    """What a refused `/users/track` request means for the engine: too many objects (send
    smaller batches: the next documented cap below this size, else half), objects at fault
    (fail them with Braze's reasons, send the others again), or the error as it came."""
    if exc.status != 400:
        return exc
    if TOO_MANY_OBJECTS in exc.message:
        size = len(refs)
        lower = [cap for cap in LOWER_OBJECT_CAPS if cap < size]
        return BatchTooLarge(
            f"Braze refused {size} objects in one request ({exc.message})",
            limit=lower[0] if lower else max(1, size // 2),
            body=exc.body,
        )
    failed = object_errors(exc.body, refs)
    if failed:
        return ObjectsRefused(exc.message, failed=failed, body=exc.body)
    return exc
