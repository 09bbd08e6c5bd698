"""Page bodies move to a table of their own, stored once per distinct text (RawBody); every raw
page gets the size of its payload and the time it was last fetched (retention counts from there).

Existing bodies are moved as they are (same compressed bytes): pages with the same text, e.g.
one CSV file dropped under two names, come to share one body. The old column goes in 0007, in
a transaction of its own (PostgreSQL refuses to alter a table with pending FK checks)."""

import hashlib
import json
import zlib

import django.db.models.deletion
from django.db import migrations, models

BATCH = 100


def payload_size(payload) -> int:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode())


def move_bodies(apps, schema_editor):
    RawRecord = apps.get_model("etl", "RawRecord")
    RawBody = apps.get_model("etl", "RawBody")
    last = 0
    while batch := list(RawRecord.objects.filter(pk__gt=last).order_by("pk")[:BATCH]):
        for raw in batch:
            data = None if raw.legacy_body is None else bytes(raw.legacy_body)
            raw.payload_size = payload_size(raw.payload)
            if data is not None:
                digest = hashlib.sha256(zlib.decompress(data)).hexdigest()
                body, _ = RawBody.objects.get_or_create(
                    digest=digest, defaults={"data": data, "size": len(data)}
                )
                raw.body_id = body.pk
            raw.last_seen_at = raw.fetched_at
        RawRecord.objects.bulk_update(batch, ["body", "payload_size", "last_seen_at"])
        last = batch[-1].pk


def restore_bodies(apps, schema_editor):
    RawRecord = apps.get_model("etl", "RawRecord")
    last = 0
    while batch := list(
        RawRecord.objects.filter(pk__gt=last, body__isnull=False)
        .select_related("body")
        .order_by("pk")[:BATCH]
    ):
        for raw in batch:
            raw.legacy_body = bytes(raw.body.data)
        RawRecord.objects.bulk_update(batch, ["legacy_body"])
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("etl", "0005_article_links_without_tracking")]

    operations = [
        migrations.CreateModel(
            name="RawBody",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("digest", models.CharField(help_text="SHA-256 of the text.", max_length=64, unique=True)),
                ("data", models.BinaryField()),
                ("size", models.PositiveIntegerField(help_text="Compressed bytes.")),
            ],
        ),
        migrations.RenameField(model_name="rawrecord", old_name="body", new_name="legacy_body"),
        migrations.AddField(
            model_name="rawrecord",
            name="body",
            field=models.ForeignKey(
                blank=True,
                help_text="Bulk text of the page (CSV lines), shared by pages with the same text.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="pages",
                to="etl.rawbody",
            ),
        ),
        migrations.AddField(
            model_name="rawrecord",
            name="payload_size",
            field=models.PositiveIntegerField(
                default=0, help_text="Bytes of the payload as JSON (its body counts in RawBody.size)."
            ),
        ),
        migrations.AddField(
            model_name="rawrecord",
            name="last_seen_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(move_bodies, restore_bodies),
    ]
