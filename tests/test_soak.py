"""A CI-sized soak (`tests/soak/`): the real stack (gunicorn, two Celery workers, beat) on
PRIVATE PostgreSQL and Redis, local upstreams that move, every kind of fault injected once with
a fixed seed; then every item served is stored exactly once and the stack has recovered.

Three minutes at most, start-up and quiet period included. `make soak` runs the same code for
15 minutes (`SOAK_MINUTES`). It needs no test database: it never touches the suite's.
"""

from __future__ import annotations

import pytest

from tests.services import postgres_missing, redis_missing
from tests.soak import run_soak
from tests.soak.chaos import KINDS

# 78 s of traffic (20 s warm-up, then the 7 faults about 7 s apart), a quiet period of at most
# 55 s, 10 s to drain in-flight runs: with ~15 s of start-up and stop, under 3 minutes even
# when nothing settles.
CI_MINUTES = 1.3
CI_SEED = 20251228


@pytest.mark.slow
def test_soak_every_item_once_and_the_stack_recovers(tmp_path):
    missing = postgres_missing() or redis_missing()
    if missing:
        pytest.skip(missing)

    report = run_soak(CI_MINUTES, CI_SEED, workdir=tmp_path, settle_seconds=55, drain_seconds=10)

    assert set(report.injected) == set(KINDS), report.render()
    assert report.passed, report.render()
