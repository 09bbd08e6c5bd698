"""Reads over runs that /health and /stats stand on."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from runs.models import Run
from runs.selectors import runs_last_per_source
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


def test_a_sources_last_run_is_its_own_even_when_another_source_started_at_that_instant():
    now = timezone.now()
    earlier, later = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
    RunFactory(source="csv", status=Run.Status.FAILED, started_at=earlier)
    RunFactory(source="csv", status=Run.Status.SUCCESS, started_at=later)
    RunFactory(source="coingecko", status=Run.Status.SUCCESS, started_at=earlier)
    RunFactory(source="rss", status=Run.Status.SKIPPED, started_at=later)
    RunFactory(source="rss", status=Run.Status.PARTIAL, started_at=earlier)

    last = runs_last_per_source(sources=["coingecko", "rss", "csv"])

    assert last["csv"]["last_run"].status == Run.Status.SUCCESS
    assert last["csv"]["last_run"].started_at == later
    assert last["coingecko"]["last_run"].source == "coingecko"
    assert last["rss"]["last_run"].status == Run.Status.PARTIAL  # a skip is not a run of it


def test_a_source_that_never_ran_has_no_last_run_and_no_staleness():
    RunFactory(source="csv")

    last = runs_last_per_source(sources=["coingecko", "csv"])

    assert last["coingecko"] == {
        "last_run": None,
        "last_success_at": None,
        "last_failure_at": None,
        "last_usable_at": None,
        "staleness_seconds": None,
    }
    assert last["csv"]["last_run"] is not None
