"""The soak: the whole stack (gunicorn, two Celery workers, beat) on private PostgreSQL and
Redis, against local upstreams that move, under a seeded, bounded chaos loop; then checks that
every item served was stored exactly once and that the stack recovered.

`python -m tests.soak` (`make soak`, `SOAK_MINUTES`, `SOAK_SEED`) for operations;
`tests/test_soak.py` runs a CI-sized soak of the same code in the suite.
"""

from tests.soak.check import Report
from tests.soak.runner import SoakUnavailable, run_soak

__all__ = ["Report", "SoakUnavailable", "run_soak"]
