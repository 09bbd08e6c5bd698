"""Interpreter settings for throughput, applied once where an ETL process starts: a Celery
worker (etl.tasks connects it to the worker's start signals) and `manage.py etl run`. Both
measured on a 1,000,000-row CSV (tests/benchmarks/csv_ingest.py):

- fewer cyclic-GC passes: a page allocates hundreds of thousands of short-lived objects, none
  in cycles, and with the default thresholds the collector kept rescanning every live object
  of the process (a third of the run). What is alive at start-up is frozen out of the scans.
- a shorter GIL switch interval: the database thread gives up the GIL at every round trip and
  then waited up to 5 ms for the read-ahead thread to hand it back (another third).

Web processes keep the interpreter's defaults.
"""

from __future__ import annotations

import gc
import sys

GC_FIRST_THRESHOLD = 50_000
SWITCH_INTERVAL = 0.0002  # seconds


_tuned = False


def tune_for_throughput(**_signal_kwargs: object) -> None:
    """Once per process (later calls do nothing); accepts and ignores the keyword arguments
    of Celery's signals."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_FIRST_THRESHOLD), *thresholds[1:])
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
