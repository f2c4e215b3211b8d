"""Which of a run's requests and answers its page keeps (SyncRunExchange), and writing them.

Kept, redacted (connections/partners/redaction.py), one INSERT each:

- every request of the run's first FIRST_BATCHES batches, so a page shows what a good exchange
  looks like too;
- every request the partner refused or left unanswered (4xx, 5xx, 429, a network error), with
  the other requests of the same attempt;
- a few accepted answers that still failed members (Braze's 201 with per-object errors).

At most KEPT_PER_RUN per run, of which at most THROTTLED_KEPT 429s (a storm's answers are all
alike) and PARTIAL_KEPT accepted answers with failures, so neither crowds out the other errors.
Past the cap, refused and unanswered requests are counted (`SyncRun.exchanges_left_out`, added
with the counters the sender writes for them anyway), and the answer that stops a run is kept
whatever the cap: it is the one a marketer needs. An ordinary batch past the first few costs
nothing here.

Runs on the engine's own thread (never a sending thread): it writes to the database.
"""

from dataclasses import dataclass
from functools import partial

from django.db.models import Count, Q

from connections.partners.base import Partner
from connections.partners.exchanges import Exchange
from connections.partners.redaction import SAMPLE, Transcript, transcript
from syncs.models import SyncRun, SyncRunExchange

FIRST_BATCHES = 5
KEPT_PER_RUN = 50
THROTTLED_KEPT = 10
PARTIAL_KEPT = 5


@dataclass
class BatchNumber:
    """A batch as the page numbers it: in the order the run sent it (its halves and resends
    keep its number), and the attempts at it so far."""

    number: int
    attempts: int = 0

    def next_attempt(self) -> int:
        self.attempts += 1
        return self.attempts


@dataclass
class _Kept:
    """What this run kept before (a resumed run carries on from its earlier parts)."""

    interruptions: int
    total: int
    throttled: int
    partial: int


class ExchangeLog:
    """A run's kept exchanges, for one sender: `keep` after each attempt is answered."""

    def __init__(self, run_id: int, partner: type[Partner]) -> None:
        self.run_id = run_id
        self.redact = partial(partner.redact_request, sample=SAMPLE)
        self._kept: _Kept | None = None
        self._left_out = 0

    def keep(
        self,
        noted: list[Exchange],
        *,
        batch: BatchNumber,
        attempt: int,
        failed_members: bool = False,
        stops_run: bool = False,
    ) -> None:
        """Keep an attempt's exchanges (`noted`) if they are worth it and the cap allows;
        `failed_members`: the batch was accepted with some of its members failed;
        `stops_run`: this answer ends the run."""
        refused = any(exchange.failed for exchange in noted)
        if not (batch.number <= FIRST_BATCHES or refused or failed_members):
            return
        kept = self._so_far()
        if kept is None:
            return  # the run is gone (deleted with its connection): nothing to keep it for
        for exchange in noted:
            if stops_run or self._room(kept, exchange, first=batch.number <= FIRST_BATCHES):
                self._write(transcript(exchange, self.redact), batch, attempt, kept)
            elif exchange.failed:
                self._left_out += 1

    def take_left_out(self) -> int:
        """Refused or unanswered requests left out since last asked: the sender adds them to
        the run's counters in the same UPDATE as the requests they were."""
        left_out, self._left_out = self._left_out, 0
        return left_out

    def _room(self, kept: _Kept, exchange: Exchange, *, first: bool) -> bool:
        if kept.total >= KEPT_PER_RUN:
            return False
        if exchange.status == 429:
            return kept.throttled < THROTTLED_KEPT
        if not exchange.failed and not first:
            return kept.partial < PARTIAL_KEPT
        return True

    def _write(self, kept_one: Transcript, batch: BatchNumber, attempt: int, kept: _Kept) -> None:
        SyncRunExchange.objects.create(
            run_id=self.run_id,
            at=kept_one.at,
            batch=batch.number,
            attempt=attempt,
            interruptions=kept.interruptions,
            method=kept_one.method[:8],
            path=kept_one.path[:300],
            status=kept_one.status,
            milliseconds=kept_one.milliseconds,
            request=kept_one.request,
            answer=kept_one.answer,
            note=kept_one.note[:300],
        )
        kept.total += 1
        if kept_one.status == 429:
            kept.throttled += 1
        elif kept_one.status is not None and kept_one.status < 400 and batch.number > FIRST_BATCHES:
            kept.partial += 1

    def _so_far(self) -> _Kept | None:
        """Read once per sender: the run's interruptions and what its earlier parts kept."""
        if self._kept is None:
            row = (
                SyncRun.objects.filter(pk=self.run_id)
                .annotate(
                    kept_total=Count("exchanges"),
                    kept_throttled=Count("exchanges", filter=Q(exchanges__status=429)),
                    kept_partial=Count(
                        "exchanges",
                        filter=Q(exchanges__status__lt=400, exchanges__batch__gt=FIRST_BATCHES),
                    ),
                )
                .values_list("interruptions", "kept_total", "kept_throttled", "kept_partial")
                .first()
            )
            self._kept = None if row is None else _Kept(*row)
        return self._kept
