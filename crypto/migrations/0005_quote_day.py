"""The daily rollup of quotes (crypto.models.QuoteDay), on PostgreSQL kept by statement triggers
on crypto_quote from each statement's transition tables, in the writing transaction:

- INSERT adds the new rows' counts and sums, and folds their prices into min and max;
- UPDATE takes the old rows' counts and sums out and puts the new rows' in, then reads min and
  max again from the quotes of the days it touched (an ON CONFLICT DO UPDATE fires UPDATE's
  trigger before INSERT's: min and max read again already hold the inserted rows, and folding
  them in once more changes nothing; counts and sums are deltas, each row counted once);
- DELETE (admin, an asset's cascade) takes the rows' counts and sums out, reads min and max
  again from the quotes left, and drops the days left empty;
- TRUNCATE empties it (with a DELETE: a flush truncates both tables in one statement, and a
  table that statement holds cannot be truncated again inside it).

Then it is filled from the quotes there are, in key order (an asset's days share pages: a
history by day reads few), in the same transaction (the triggers' lock keeps writers out until
it commits: about 20 s for 10M quotes). Elsewhere (SQLite) the table stays empty: the history
aggregates the quotes there.
"""

# ruff: noqa: S608 - every statement is built from this module's constants

import django.db.models.deletion
from django.db import migrations, models

# A quote's UTC day, whatever the session's time zone.
DAY = "(date_trunc('day', observed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
COLUMNS = (
    "asset_id, source, day, samples, price_count, price_sum, price_min, price_max,"
    " cap_count, cap_sum, volume_count, volume_sum"
)
# Adds the grouped rows of `rows` (sign 1 or -1) into the rollup.
MERGE = f"""
INSERT INTO crypto_quoteday AS d ({COLUMNS})
SELECT asset_id, source, day, sum(n), sum(pn), sum(ps), min(lo), max(hi),
       sum(cn), sum(cs), sum(vn), sum(vs)
FROM ({{rows}}) AS delta
GROUP BY asset_id, source, day
ON CONFLICT (asset_id, source, day) DO UPDATE SET
    samples = d.samples + EXCLUDED.samples,
    price_count = d.price_count + EXCLUDED.price_count,
    price_sum = coalesce(d.price_sum + EXCLUDED.price_sum, d.price_sum, EXCLUDED.price_sum),
    price_min = least(d.price_min, EXCLUDED.price_min),
    price_max = greatest(d.price_max, EXCLUDED.price_max),
    cap_count = d.cap_count + EXCLUDED.cap_count,
    cap_sum = coalesce(d.cap_sum + EXCLUDED.cap_sum, d.cap_sum, EXCLUDED.cap_sum),
    volume_count = d.volume_count + EXCLUDED.volume_count,
    volume_sum = coalesce(d.volume_sum + EXCLUDED.volume_sum, d.volume_sum, EXCLUDED.volume_sum);
"""


def rows(table, sign):
    """The rows of a transition table as signed deltas; min and max only from rows added."""
    folded = (
        "price_usd AS lo, price_usd AS hi"
        if sign > 0
        else "NULL::numeric AS lo, NULL::numeric AS hi"
    )
    s = "" if sign > 0 else "-"
    return (
        f"SELECT asset_id, source, {DAY} AS day, {s}1 AS n,"
        f" {s}(price_usd IS NOT NULL)::int AS pn, {s}price_usd AS ps, {folded},"
        f" {s}(market_cap IS NOT NULL)::int AS cn, {s}market_cap AS cs,"
        f" {s}(volume_24h IS NOT NULL)::int AS vn, {s}volume_24h AS vs FROM {table}"
    )


# Min and max of the days `keys` names, read again from the quotes; days left empty go.
REREAD = """
UPDATE crypto_quoteday AS d SET price_min = m.lo, price_max = m.hi
FROM (
    SELECT k.asset_id, k.source, k.day, min(q.price_usd) AS lo, max(q.price_usd) AS hi
    FROM ({keys}) AS k
    LEFT JOIN crypto_quote AS q ON q.asset_id = k.asset_id AND q.source = k.source
        AND q.observed_at >= k.day AND q.observed_at < k.day + interval '24 hours'
    GROUP BY k.asset_id, k.source, k.day
) AS m
WHERE d.asset_id = m.asset_id AND d.source = m.source AND d.day = m.day;
DELETE FROM crypto_quoteday AS d USING ({keys}) AS k
WHERE d.asset_id = k.asset_id AND d.source = k.source AND d.day = k.day AND d.samples <= 0;
"""


def keys(*tables):
    return " UNION ".join(
        f"SELECT DISTINCT asset_id, source, {DAY} AS day FROM {t}" for t in tables
    )


def function(name, body):
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$;"
    )


TRIGGERS = {
    "crypto_quoteday_insert": (
        "AFTER INSERT ON crypto_quote REFERENCING NEW TABLE AS added",
        MERGE.format(rows=rows("added", 1)),
    ),
    "crypto_quoteday_update": (
        "AFTER UPDATE ON crypto_quote REFERENCING OLD TABLE AS stale NEW TABLE AS fresh",
        MERGE.format(rows=f"{rows('fresh', 1)} UNION ALL {rows('stale', -1)}")
        + REREAD.format(keys=keys("fresh", "stale")),
    ),
    "crypto_quoteday_delete": (
        "AFTER DELETE ON crypto_quote REFERENCING OLD TABLE AS gone",
        MERGE.format(rows=rows("gone", -1)) + REREAD.format(keys=keys("gone")),
    ),
    "crypto_quoteday_truncate": ("AFTER TRUNCATE ON crypto_quote", "DELETE FROM crypto_quoteday;"),
}

BACKFILL = f"""
INSERT INTO crypto_quoteday ({COLUMNS})
SELECT asset_id, source, {DAY}, count(*), count(price_usd), sum(price_usd), min(price_usd),
       max(price_usd), count(market_cap), sum(market_cap), count(volume_24h), sum(volume_24h)
FROM crypto_quote GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # Pages of a load update the same days again and again: room on each page lets an update
    # stay on its page (HOT, no index entry). Measured on 10,000-row pages into existing days:
    # the trigger's cost 150 ms a page at the default 100, about 10 ms at 50.
    schema_editor.execute("ALTER TABLE crypto_quoteday SET (fillfactor = 50)")
    for name, (when, body) in TRIGGERS.items():
        schema_editor.execute(function(name, body))
        schema_editor.execute(
            f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    schema_editor.execute(BACKFILL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE crypto_quoteday RESET (fillfactor)")
    for name in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON crypto_quote")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()")


class Migration(migrations.Migration):
    dependencies = [
        ("crypto", "0004_data_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="QuoteDay",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("source", models.CharField(max_length=50)),
                ("day", models.DateTimeField(help_text="Midnight UTC.")),
                ("samples", models.BigIntegerField()),
                ("price_count", models.BigIntegerField()),
                ("price_sum", models.DecimalField(decimal_places=18, max_digits=60, null=True)),
                ("price_min", models.DecimalField(decimal_places=18, max_digits=40, null=True)),
                ("price_max", models.DecimalField(decimal_places=18, max_digits=40, null=True)),
                ("cap_count", models.BigIntegerField()),
                ("cap_sum", models.DecimalField(decimal_places=18, max_digits=60, null=True)),
                ("volume_count", models.BigIntegerField()),
                ("volume_sum", models.DecimalField(decimal_places=18, max_digits=60, null=True)),
                (
                    "asset",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="crypto.asset",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("asset", "source", "day"), name="quoteday_asset_source_day_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
