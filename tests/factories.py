"""factory_boy factories for every model the admin shows (ours and the Celery apps')."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from django_celery_results.models import GroupResult, TaskResult

from crypto.models import Article, ArticleAsset, Asset, LatestQuote, Quote, SourceAsset
from crypto.versions import data_version_advance
from etl.models import (
    Checkpoint,
    DriftEvent,
    FieldMapping,
    QuarantinedRecord,
    RawRecord,
    SourceLease,
    SourcePolicy,
)
from kasparro.core.apikeys.models import APIKey
from runs import rollups
from runs.models import Run

BASE = dt.datetime(2025, 12, 28, 12, 0, tzinfo=dt.UTC)


def minutes(n: int) -> dt.datetime:
    return BASE - dt.timedelta(minutes=n)


class Factory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True


# --- django.contrib.auth ------------------------------------------------------------------------


class GroupFactory(Factory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"group-{n}")


class UserFactory(Factory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user-{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.set(extracted)


# --- crypto -------------------------------------------------------------------------------------


class AssetFactory(Factory):
    class Meta:
        model = Asset

    slug = factory.Sequence(lambda n: f"coin-{n}")
    symbol = factory.Sequence(lambda n: f"C{n}")
    name = factory.Sequence(lambda n: f"Coin {n}")


class SourceAssetFactory(Factory):
    class Meta:
        model = SourceAsset

    source = "coingecko"
    key = factory.Sequence(lambda n: f"coin-key-{n}")
    asset = factory.SubFactory(AssetFactory)
    symbol = factory.LazyAttribute(lambda o: o.asset.symbol)
    name = factory.LazyAttribute(lambda o: o.asset.name)
    match_method = SourceAsset.Method.AUTHORITATIVE
    confidence = 100


class QuoteFactory(Factory):
    class Meta:
        model = Quote

    asset = factory.SubFactory(AssetFactory)
    source = "coingecko"
    observed_at = factory.Sequence(minutes)
    price_usd = Decimal("87000.5")
    market_cap = Decimal("1700000000000")
    volume_24h = Decimal("30000000000")
    price_change_24h = Decimal("-1.25")
    market_cap_rank = factory.Sequence(lambda n: n + 1)
    ingested_at = factory.LazyFunction(timezone.now)


class LatestQuoteFactory(Factory):
    class Meta:
        model = LatestQuote

    asset = factory.SubFactory(AssetFactory)
    source = "coingecko"
    observed_at = BASE
    price_usd = Decimal("1.5")
    market_cap_rank = factory.Sequence(lambda n: n + 1)


class ArticleFactory(Factory):
    class Meta:
        model = Article

    feed = factory.Sequence(lambda n: f"https://news.example/{n % 3}.rss")
    guid = factory.Sequence(lambda n: f"guid-{n}")
    title = factory.Sequence(lambda n: f"Bitcoin moves, part {n}")
    url = factory.Sequence(lambda n: f"https://news.example/a/{n}")
    summary = "Prices moved."
    published_at = factory.Sequence(minutes)
    content_hash = factory.Sequence(lambda n: hashlib.sha256(str(n).encode()).hexdigest())
    fetched_at = BASE
    updated_at = BASE


class ArticleAssetFactory(Factory):
    class Meta:
        model = ArticleAsset

    article = factory.SubFactory(ArticleFactory)
    asset = factory.SubFactory(AssetFactory)
    matched_by = ArticleAsset.MatchedBy.NAME


# --- runs ---------------------------------------------------------------------------------------


class RunFactory(Factory):
    class Meta:
        model = Run

    source = "coingecko"
    status = Run.Status.SUCCESS
    trigger = Run.Trigger.BEAT
    started_at = factory.Sequence(lambda n: minutes(60 * n))
    finished_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(seconds=12))
    pages = 2
    items_fetched = 100
    items_inserted = 90
    items_updated = 10
    checkpoint_before = {"next_page": 1}
    checkpoint_after = {"next_page": 1}

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """A run as runs.services records one: its rollups kept with it, the data version
        advanced."""
        run = super()._create(model_class, *args, **kwargs)
        if run.status == Run.Status.RUNNING:
            rollups.started(run)
        else:
            rollups.recorded(run)
        data_version_advance()
        return run


def finished_run(
    *, hours_ago: float = 1.0, seconds: float = 10.0, items: int = 100, **fields
) -> Run:
    """A finished run that started `hours_ago`, took `seconds` and fetched `items`."""
    started = timezone.now() - dt.timedelta(hours=hours_ago)
    fields.setdefault("items_inserted", items)
    return RunFactory(
        started_at=started,
        finished_at=started + dt.timedelta(seconds=seconds),
        items_fetched=items,
        items_updated=0,
        **fields,
    )


# --- etl ----------------------------------------------------------------------------------------


class CheckpointFactory(Factory):
    class Meta:
        model = Checkpoint

    source = factory.Sequence(lambda n: f"source-{n}")
    cursor = {"next_page": 2}
    run = factory.SubFactory(RunFactory)


class RawRecordFactory(Factory):
    class Meta:
        model = RawRecord

    source = "coingecko"
    content_hash = factory.Sequence(lambda n: hashlib.sha256(f"raw{n}".encode()).hexdigest())
    payload = [{"id": "bitcoin"}]
    item_count = 1
    page_ref = "page 1"
    run = factory.SubFactory(RunFactory)
    fetched_at = BASE
    last_seen_at = factory.SelfAttribute("fetched_at")


class QuarantinedRecordFactory(Factory):
    class Meta:
        model = QuarantinedRecord

    source = "csv"
    run = factory.SubFactory(RunFactory, source="csv")
    item_hash = factory.Sequence(lambda n: hashlib.sha256(f"item{n}".encode()).hexdigest())
    payload = factory.Sequence(lambda n: {"row": n, "values": ["btc", "Bitcoin", "87000"]})
    reason_code = "unknown_asset"
    reason = "no asset matches symbol BTC"
    created_at = factory.Sequence(minutes)
    last_seen_at = factory.LazyAttribute(lambda o: o.created_at)


class SourceLeaseFactory(Factory):
    class Meta:
        model = SourceLease

    source = factory.Sequence(lambda n: f"source-{n}")


class SourcePolicyFactory(Factory):
    class Meta:
        model = SourcePolicy

    source = factory.Sequence(lambda n: f"source-{n}")
    drift_policy = SourcePolicy.Drift.FREEZE


class DriftEventFactory(Factory):
    class Meta:
        model = DriftEvent
        skip_postgeneration_save = True

    source = "coingecko"
    fingerprint = factory.Sequence(lambda n: f"renamed:field_{n}>new_{n}")
    kind = "renamed"
    fields = ["current_price", "price"]
    severity = "warning"
    confidence = 95
    message = "current_price looks renamed to price"
    suggested_from = "price"
    suggested_to = "current_price"
    sample = {"id": "bitcoin", "price": 1}
    first_seen = BASE
    last_seen = BASE
    replay_run = factory.SubFactory(RunFactory, trigger=Run.Trigger.REPLAY)

    @factory.post_generation
    def runs(self, create, extracted, **kwargs):
        if create:
            self.runs.set(extracted if extracted is not None else [RunFactory()])


class FieldMappingFactory(Factory):
    class Meta:
        model = FieldMapping

    source = "coingecko"
    from_field = factory.Sequence(lambda n: f"price_{n}")
    to_field = "current_price"
    accepted_by = factory.SubFactory(UserFactory)
    accepted_at = BASE


# --- kasparro -----------------------------------------------------------------------------------


class APIKeyFactory(Factory):
    class Meta:
        model = APIKey

    name = factory.Sequence(lambda n: f"client-{n}")
    prefix = factory.Sequence(lambda n: f"kp{n:08d}")
    hashed_key = factory.Sequence(lambda n: hashlib.sha256(f"key{n}".encode()).hexdigest())


# --- django-celery-beat and django-celery-results -----------------------------------------------


class IntervalScheduleFactory(Factory):
    class Meta:
        model = IntervalSchedule

    every = factory.Sequence(lambda n: n + 1)
    period = IntervalSchedule.MINUTES


class CrontabScheduleFactory(Factory):
    class Meta:
        model = CrontabSchedule

    minute = factory.Sequence(lambda n: str(n % 60))
    hour = "*"


class SolarScheduleFactory(Factory):
    class Meta:
        model = SolarSchedule

    event = "sunrise"
    latitude = factory.Sequence(lambda n: Decimal(n % 90))
    longitude = factory.Sequence(lambda n: Decimal(n // 90))


class ClockedScheduleFactory(Factory):
    class Meta:
        model = ClockedSchedule

    clocked_time = factory.Sequence(minutes)


class PeriodicTaskFactory(Factory):
    class Meta:
        model = PeriodicTask

    name = factory.Sequence(lambda n: f"ingest {n}")
    task = "etl.ingest"
    args = '["coingecko"]'
    interval = factory.SubFactory(IntervalScheduleFactory)


class TaskResultFactory(Factory):
    class Meta:
        model = TaskResult

    task_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    task_name = "etl.ingest"
    status = "SUCCESS"
    periodic_task_name = "ingest coingecko"
    worker = "celery@host"
    result = '{"status": "success"}'


class GroupResultFactory(Factory):
    class Meta:
        model = GroupResult

    group_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    result = "[]"


FACTORIES: dict[type, type[Factory]] = {
    factory_class._meta.model: factory_class
    for factory_class in Factory.__subclasses__()
    if not factory_class._meta.abstract
}
