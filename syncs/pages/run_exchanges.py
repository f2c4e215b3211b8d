"""A run's kept requests and answers (SyncRunExchange) for its page and the API: one query, at
most the run's cap of rows (syncs/engine/exchanges.py), already redacted when they were written."""

from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus

from connections.partners.redaction import SAMPLE
from syncs.engine.exchanges import FIRST_BATCHES, KEPT_PER_RUN
from syncs.models import SyncRun, SyncRunExchange
from syncs.pages.progress import format_duration

# The cap, the answer that stopped the run (kept past it), and room to spare.
ROWS_SHOWN = KEPT_PER_RUN + 10


@dataclass(frozen=True)
class ExchangeRow:
    exchange: SyncRunExchange
    since_queued: str

    @property
    def status_text(self) -> str:
        """ "503 Service Unavailable", "201 Created"; "No answer" when none came."""
        status = self.exchange.status
        if status is None:
            return "No answer"
        try:
            return f"{status} {HTTPStatus(status).phrase}"
        except ValueError:
            return str(status)

    @property
    def duration(self) -> str:
        milliseconds = self.exchange.milliseconds
        if milliseconds < 1000:
            return f"{milliseconds:,} ms"
        return format_duration(milliseconds / 1000)

    @property
    def batch_text(self) -> str:
        """ "Batch 3", or "Batch 3 after resume 1" in a part of a run resumed after a stop
        (batches are numbered from 1 again there)."""
        exchange = self.exchange
        resumed = f" after resume {exchange.interruptions}" if exchange.interruptions else ""
        return f"Batch {exchange.batch:,}{resumed}"


@dataclass(frozen=True)
class RunExchanges:
    rows: list[ExchangeRow]
    refused: int
    left_out: int
    first_batches: int = FIRST_BATCHES
    kept_per_run: int = KEPT_PER_RUN
    sample: int = SAMPLE


def _since(origin: datetime, at: datetime) -> str:
    return f"+{format_duration(max(0.0, (at - origin).total_seconds()))}"


def run_exchanges(run: SyncRun) -> RunExchanges:
    """The run's kept exchanges, in the order they were sent, and how many refused or
    unanswered requests were left out past the cap."""
    exchanges = list(SyncRunExchange.objects.filter(run=run).order_by("id")[:ROWS_SHOWN])
    rows = [ExchangeRow(exchange, _since(run.queued_at, exchange.at)) for exchange in exchanges]
    refused = sum(1 for exchange in exchanges if exchange.failed)
    return RunExchanges(rows=rows, refused=refused, left_out=run.exchanges_left_out)
