"""The source's cohort list, read by a worker and kept for the source page to pick from: a page
never waits on a partner (docs/architecture.md §1, workers make every partner call)."""

import logging

import redis
from django.utils import timezone

from cohorts.models import AmplitudeCohortListing
from cohorts.queue import enqueue_listing
from connections import crypto
from connections.models import Connection
from connections.partners.amplitude.partner import Amplitude
from connections.partners.http import PartnerError
from connections.services import record_refused_credentials

logger = logging.getLogger(__name__)

# What the page offers: a project with more cohorts is cut here, and the page says so.
MAX_LISTED = 1000
QUEUE_DOWN = "The list could not be asked for (the job queue is unreachable); try again."


def request_listing(connection: Connection) -> AmplitudeCohortListing:
    """Mark the list as asked for and queue the job that reads it."""
    listing, _ = AmplitudeCohortListing.objects.update_or_create(
        connection=connection, defaults={"requested_at": timezone.now()}
    )
    try:
        enqueue_listing(connection.pk)
    except redis.RedisError as exc:
        logger.error("Could not queue the cohort list of %s: %s", connection.pk, type(exc).__name__)
        listing.error = QUEUE_DOWN
        listing.save(update_fields=["error"])
    return listing


def read_listing(connection_id: int) -> AmplitudeCohortListing | None:
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None or not connection.partner.downloads_cohorts:
        return None
    cohorts: list[dict[str, object]] = []
    error = ""
    try:
        adapter = connection.partner(
            connection.get_config(), crypto.decrypt(connection.encrypted_secret)
        )
        if not isinstance(adapter, Amplitude):
            raise ValueError(f"{connection.name} is not an Amplitude source.")
        for entry in adapter.list_cohorts()[:MAX_LISTED]:
            if entry.get("archived") or not entry.get("id"):
                continue
            cohorts.append(
                {
                    "id": str(entry["id"]),
                    "name": str(entry.get("name") or entry["id"])[:255],
                    "size": entry.get("size") if isinstance(entry.get("size"), int) else None,
                }
            )
    except PartnerError as exc:
        error = exc.message
        if exc.auth:
            record_refused_credentials(connection_id=connection.pk, message=exc.message)
    except (ValueError, crypto.CredentialError) as exc:
        error = str(exc)
    listing, _ = AmplitudeCohortListing.objects.update_or_create(
        connection=connection,
        defaults={"cohorts": cohorts, "listed_at": timezone.now(), "error": error},
    )
    return listing
