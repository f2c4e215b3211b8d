"""What keeping a run's requests and answers (issue #15) costs an ordinary batch: one past the
run's first five, accepted, so nothing is written.

    DEBUG=true .venv/bin/python bench/exchange_overhead.py [--batches 200000]

In-process, no partner and no database: the sending thread notes the request and its answer
(connections/partners/exchanges.py, as partners/http.py does around every call) and the engine
decides not to keep it (syncs/engine/exchanges.py). The figure is microseconds per batch, to set
against a request's own time (a 75-object `/users/track` on the loopback takes about 1.5 ms with
two threads: bench/simulator_ceiling.py).
"""

import argparse
import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=200_000)
    args = parser.parse_args()
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # settings need one; unused
    _common.setup_django(need_postgres=False)
    from connections.partners import exchanges
    from connections.partners.braze.partner import Braze
    from syncs.engine.exchanges import FIRST_BATCHES, BatchNumber, ExchangeLog

    log = ExchangeLog(run_id=1, partner=Braze)
    batch = BatchNumber(number=FIRST_BATCHES + 1)
    body = {"attributes": [{"external_id": f"member-{n}"} for n in range(75)]}
    answer = {"message": "success", "attributes_processed": 75}

    def ordinary_batch() -> None:
        with exchanges.recording() as noted:
            sent = exchanges.pending("POST", "https://rest.example.com/users/track", body, "key")
            if sent is not None:
                sent.answered(201, answer)
        log.keep(noted, batch=batch, attempt=batch.next_attempt())

    seconds = timeit.timeit(ordinary_batch, number=args.batches)
    print(f"{args.batches:,} ordinary batches; {_common.machine()}")
    print(f"noted and not kept: {seconds / args.batches * 1e6:.1f} µs per batch")


if __name__ == "__main__":
    main()
