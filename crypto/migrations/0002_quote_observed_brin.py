"""A BRIN index on Quote.observed_at, PostgreSQL only (SQLite has no BRIN)."""

from django.db import migrations

INDEX = "quote_observed_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON crypto_quote USING brin (observed_at)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("crypto", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
