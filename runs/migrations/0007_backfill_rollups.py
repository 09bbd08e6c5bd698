"""Fill the run rollups from the runs already recorded (one pass over the table, once); from
here on runs.services keeps them as runs start and finish."""

from collections import defaultdict

from django.db import migrations

BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)  # runs.models.DURATION_BUCKETS then
COUNTERS = (
    "items_fetched",
    "items_inserted",
    "items_updated",
    "items_unchanged",
    "items_quarantined",
    "drift_findings",
)
USABLE = ("success", "partial")


def bucket(seconds):
    for bound in BUCKETS:
        if seconds <= bound:
            return f"le_{bound}"
    return "le_inf"


def backfill(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    RunTally = apps.get_model("runs", "RunTally")
    SourceRollup = apps.get_model("runs", "SourceRollup")
    tallies = defaultdict(lambda: defaultdict(float))
    rollups = defaultdict(dict)
    fields = ("id", "source", "status", "started_at", "finished_at", *COUNTERS)
    for row in Run.objects.values(*fields).iterator(chunk_size=5000):
        tally = tallies[row["source"], row["status"]]
        tally["runs"] += 1
        if row["status"] != "running":  # a running run's counts join its tally at its end
            for name in COUNTERS:
                tally[name] += row[name]
        finished = row["finished_at"]
        if finished is not None and row["status"] != "running":
            seconds = max(0.0, (finished - row["started_at"]).total_seconds())
            tally["duration_seconds"] += seconds
            tally[bucket(seconds)] += 1
        rollup = rollups[row["source"]]
        if row["status"] != "skipped" and (
            "last_run_started_at" not in rollup or row["started_at"] >= rollup["last_run_started_at"]
        ):
            rollup["last_run_id"] = row["id"]
            rollup["last_run_started_at"] = row["started_at"]
        if finished is not None:
            for field, wanted in (
                ("last_success_at", ("success",)),
                ("last_failure_at", ("failed",)),
                ("last_usable_at", USABLE),
            ):
                if row["status"] in wanted and (rollup.get(field) is None or finished > rollup[field]):
                    rollup[field] = finished
    RunTally.objects.bulk_create(
        RunTally(
            source=source,
            status=status,
            **{k: (v if k == "duration_seconds" else int(v)) for k, v in values.items()},
        )
        for (source, status), values in tallies.items()
    )
    SourceRollup.objects.bulk_create(
        SourceRollup(source=source, **values) for source, values in rollups.items()
    )


def forget(apps, schema_editor):
    apps.get_model("runs", "RunTally").objects.all().delete()
    apps.get_model("runs", "SourceRollup").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("runs", "0006_rollups")]

    operations = [migrations.RunPython(backfill, forget)]
