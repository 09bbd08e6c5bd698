"""Articles stored before links were cleaned keep `?utm_source=…` in their URL: clean them
(the same rule as etl.sources.rss.strip_tracking, copied so the migration never changes)."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.db import migrations
from django.db.models import Q

TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref_src")


def strip_tracking(url: str) -> str:
    parts = urlsplit(url.strip())
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in pairs if not k.lower().startswith(TRACKING)]
    if len(query) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(query)))


def clean(apps, schema_editor):
    Article = apps.get_model("crypto", "Article")
    tracked = Q()
    for name in TRACKING:
        tracked |= Q(url__icontains=name)
    batch = []
    for article in Article.objects.filter(tracked).only("pk", "url").iterator(chunk_size=1000):
        cleaned = strip_tracking(article.url)
        if cleaned != article.url:
            article.url = cleaned
            batch.append(article)
        if len(batch) >= 1000:
            Article.objects.bulk_update(batch, ["url"])
            batch = []
    Article.objects.bulk_update(batch, ["url"])


class Migration(migrations.Migration):
    dependencies = [("etl", "0004_heartbeat"), ("crypto", "0002_quote_observed_brin")]
    operations = [migrations.RunPython(clean, migrations.RunPython.noop)]
