"""RQ entry point for alert deliveries: thin, ids in, the service does the work.
alerts/queue.py enqueues it and says how it is retried."""

from rq import get_current_job

from alerts.models import AlertDelivery
from alerts.services import deliver


class DeliveryRetry(Exception):
    """Raised so RQ schedules the next attempt; the message never holds the webhook URL."""


def deliver_alert(delivery_id: int) -> str:
    job = get_current_job()
    last_attempt = job is None or not job.retries_left
    delivery = deliver(delivery_id, last_attempt=last_attempt)
    if delivery is None:
        return "skipped"
    if delivery.status == AlertDelivery.Status.PENDING:
        raise DeliveryRetry(f"Alert delivery {delivery_id} will be retried: {delivery.error}")
    return delivery.status
