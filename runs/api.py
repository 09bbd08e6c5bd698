"""Run history for operators: /stats, /runs, /runs/{id}, /compare-runs. Token required.

About 325 lines: the run list's fast representation (`runs_representation`) sits next to
RunSerializer, the shape it must equal field for field and which the schema reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from crypto.response_cache import versioned
from kasparro.core.api import (
    AUTH_ERRORS,
    NOT_FOUND,
    ApiView,
    PageParams,
    envelope_serializer,
    parameter_examples,
)
from kasparro.core.apikeys.authentication import HasAPIKey
from kasparro.core.catalogue import source_names
from kasparro.core.errors import NotFoundError
from kasparro.core.openapi import link, response_links
from kasparro.core.request_id import get_request_id
from runs.models import RUN_COUNTERS, Run
from runs.report import runs_report
from runs.selectors import run_list, runs_stats


class RunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(allow_null=True)
    parent_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "source",
            "status",
            "trigger",
            "parent_id",
            "started_at",
            "finished_at",
            "duration_seconds",
            "pages",
            *RUN_COUNTERS,
            "error_class",
            "error_message",
        ]
        # Output only: every field is always in the answer, which read-only fields say in the
        # schema (required), unlike model fields with a default.
        read_only_fields = fields


_TIME = serializers.DateTimeField()  # DRF's own output for a time, without a serializer's run
RUN_LIST_COLUMNS = [name for name in RunSerializer.Meta.fields if name != "duration_seconds"]


def _duration(row: dict) -> float | None:
    """Run.duration_seconds, from a row."""
    if row["finished_at"] is None:
        return None
    return (row["finished_at"] - row["started_at"]).total_seconds()


def runs_representation(rows: Iterable[dict]) -> list[dict]:
    """RunSerializer(runs, many=True).data from `.values(*RUN_LIST_COLUMNS)` rows: without
    DRF's per-field machinery, nor the JSON columns (prices, checkpoints) a list does not show.
    tests/api/test_fast_serialization.py holds the two equal."""
    time = _TIME.to_representation
    return [
        {
            "id": str(row["id"]),
            "source": row["source"],
            "status": row["status"],
            "trigger": row["trigger"],
            "parent_id": None if row["parent_id"] is None else str(row["parent_id"]),
            "started_at": time(row["started_at"]),
            "finished_at": time(row["finished_at"]),  # null as null
            "duration_seconds": _duration(row),
            "pages": row["pages"],
            **{name: row[name] for name in RUN_COUNTERS},
            "error_class": row["error_class"],
            "error_message": row["error_message"],
        }
        for row in rows
    ]


class FindingSerializer(serializers.Serializer):
    rule = serializers.CharField()
    severity = serializers.ChoiceField(choices=["info", "warning", "critical"])
    message = serializers.CharField()


class RunDetailSerializer(RunSerializer):
    checkpoint_before = serializers.JSONField(allow_null=True)
    checkpoint_after = serializers.JSONField(allow_null=True)
    freshness_lag_seconds = serializers.FloatField(allow_null=True)
    assets_seen = serializers.SerializerMethodField()
    findings = FindingSerializer(many=True, help_text="Anomalies against the source's history.")
    retries = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields,
            "checkpoint_before",
            "checkpoint_after",
            "freshness_lag_seconds",
            "assets_seen",
            "findings",
            "retries",
        ]
        read_only_fields = fields

    def get_assets_seen(self, run: Run) -> int:
        return len(run.asset_prices or {})

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_retries(self, run: Run) -> list[str]:
        return [str(pk) for pk in run.children.order_by("started_at").values_list("pk", flat=True)]


# The run ids the schema's examples name (`/runs/{run_id}`, `/compare-runs`): a baseline run and
# the run after it. Real ids come from `GET /runs`, which links to both operations.
EXAMPLE_RUN_IDS = ("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d")


class TokenApiView(ApiView):
    permission_classes = [HasAPIKey]


# --- /stats --------------------------------------------------------------------------------------


class StatsParams(serializers.Serializer):
    window_hours = serializers.IntegerField(default=24 * 7, min_value=1, max_value=24 * 366)


class SourceStatsSerializer(serializers.Serializer):
    runs = serializers.DictField(child=serializers.IntegerField())
    items_fetched = serializers.IntegerField()
    items_inserted = serializers.IntegerField()
    items_updated = serializers.IntegerField()
    items_quarantined = serializers.IntegerField()
    drift_findings = serializers.IntegerField()
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    mean_duration_seconds = serializers.FloatField(allow_null=True)
    p95_duration_seconds = serializers.FloatField(allow_null=True)
    staleness_seconds = serializers.FloatField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    request_id = serializers.CharField(allow_null=True)
    window_start = serializers.DateTimeField()
    sources = serializers.DictField(child=SourceStatsSerializer())
    recent_runs = RunSerializer(many=True)


class StatsApi(TokenApiView):
    @extend_schema(
        parameters=[StatsParams],
        responses={200: StatsSerializer, **AUTH_ERRORS},
        examples=parameter_examples(window_hours=24),
        extensions=response_links(
            RecentRunDetail=link(
                "runs_retrieve",
                "The most recent run, in detail.",
                parameters={"run_id": "$response.body#/recent_runs/0/id"},
            )
        ),
    )
    @versioned(seconds=1)
    def get(self, request: Request) -> Response:
        p = self.params(StatsParams, request)
        stats = runs_stats(sources=source_names(), window=dt.timedelta(hours=p["window_hours"]))
        stats["request_id"] = get_request_id()
        return Response(StatsSerializer(stats).data)


# --- /runs ---------------------------------------------------------------------------------------


class RunListParams(PageParams):
    source = serializers.ChoiceField(choices=[], required=False)
    status = serializers.ChoiceField(choices=Run.Status.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="started at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="started before (ISO 8601)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = source_names()


class RunListApi(TokenApiView):
    @extend_schema(
        operation_id="runs_list",
        parameters=[RunListParams],
        responses={200: envelope_serializer("RunEnvelope", RunSerializer), **AUTH_ERRORS},
        examples=parameter_examples(
            source="coingecko", status="success", since="2025-12-01T00:00:00Z", limit=10
        ),
        description="Runs, newest first. Each run's `id` leads to `GET /runs/{run_id}`, and two "
        "of them to `POST /compare-runs` (OpenAPI links `RunDetail` and `CompareRuns`).",
        extensions=response_links(
            RunDetail=link(
                "runs_retrieve",
                "The newest run listed, in detail.",
                parameters={"run_id": "$response.body#/data/0/id"},
            ),
            CompareRuns=link(
                "compare_runs_create",
                "The newest run listed compared with the one before it.",
                request_body={
                    "run_id_1": "$response.body#/data/1/id",
                    "run_id_2": "$response.body#/data/0/id",
                },
            ),
        ),
    )
    @versioned
    def get(self, request: Request) -> Response:
        p = self.params(RunListParams, request)
        qs = run_list(
            sources=[p["source"]] if p.get("source") else None,
            statuses=[p["status"]] if p.get("status") else None,
            since=p.get("since"),
            until=p.get("until"),
        )
        limit, offset = p["limit"], p["offset"]
        data = runs_representation(qs[offset : offset + limit].values(*RUN_LIST_COLUMNS))
        return self.envelope(request, data, limit=limit, offset=offset, total=qs.count())


def _run_or_404(run_id) -> Run:
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"No run with id {run_id}.")
    return run


class RunDetailApi(TokenApiView):
    @extend_schema(
        responses={200: RunDetailSerializer, **NOT_FOUND, **AUTH_ERRORS},
        examples=parameter_examples(path={"run_id": EXAMPLE_RUN_IDS[1]}),
    )
    @versioned
    def get(self, request: Request, run_id) -> Response:
        return Response(RunDetailSerializer(_run_or_404(run_id)).data)


# --- /compare-runs -------------------------------------------------------------------------------


class CompareInput(serializers.Serializer):
    run_id_1 = serializers.UUIDField(help_text="the baseline run")
    run_id_2 = serializers.UUIDField(help_text="the run compared with it")
    price_threshold_pct = serializers.FloatField(
        required=False,
        default=10.0,
        min_value=0.1,
        max_value=1000.0,
        help_text="report assets whose price moved more than this, in percent",
    )


class PriceMoveSerializer(serializers.Serializer):
    slug = serializers.CharField()
    before = serializers.FloatField()
    after = serializers.FloatField()
    change_pct = serializers.FloatField()


class AssetChangesSerializer(serializers.Serializer):
    appeared = serializers.ListField(child=serializers.CharField())
    vanished = serializers.ListField(child=serializers.CharField())
    price_moves = PriceMoveSerializer(many=True)


class CompareOutput(serializers.Serializer):
    request_id = serializers.CharField(allow_null=True)
    run_1 = RunSerializer()
    run_2 = RunSerializer()
    findings = FindingSerializer(many=True)
    scores = serializers.DictField(
        child=serializers.DictField(child=serializers.FloatField(allow_null=True)),
        help_text="z-scores of each run against its source's trailing window, by metric",
    )
    anomalies = serializers.DictField(child=FindingSerializer(many=True))
    asset_changes = AssetChangesSerializer()


class CompareRunsApi(TokenApiView):
    @extend_schema(
        request=CompareInput,
        responses={200: CompareOutput, **NOT_FOUND, **AUTH_ERRORS},
        examples=[
            OpenApiExample(
                "Two runs of a source",
                value={
                    "run_id_1": EXAMPLE_RUN_IDS[0],
                    "run_id_2": EXAMPLE_RUN_IDS[1],
                    "price_threshold_pct": 10.0,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        payload = CompareInput(data=request.data)
        payload.is_valid(raise_exception=True)
        baseline = _run_or_404(payload.validated_data["run_id_1"])
        candidate = _run_or_404(payload.validated_data["run_id_2"])
        threshold = payload.validated_data["price_threshold_pct"] / 100
        report = runs_report(baseline=baseline, candidate=candidate, threshold=threshold)
        return Response(
            {"request_id": get_request_id(), **report}
            | {
                "run_1": RunSerializer(baseline).data,
                "run_2": RunSerializer(candidate).data,
            }
        )
