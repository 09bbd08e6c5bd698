"""The article loader: upserts articles by (feed, guid) and links each to the assets it
mentions. Unchanged articles (same content hash) are left alone."""

from __future__ import annotations

from typing import ClassVar

from django.utils import timezone

from crypto.models import Article, ArticleAsset
from etl.pipeline.load.base import Bad, Good, LoadResult, RunSeen
from etl.pipeline.mentions import MentionMatcher
from etl.sources.base import ArticleItem
from kasparro.core.catalogue import NEWS


class ArticleLoader:
    kind: ClassVar[str] = NEWS

    def __init__(self, *, source: str, seen: RunSeen | None = None) -> None:
        self.source, self.seen = source, seen
        self.reset()

    def reset(self) -> None:
        self.matcher = MentionMatcher.from_database()

    @staticmethod
    def pre_load(good: Good) -> None:
        return None

    def load(self, good: Good, extras: None, bad: Bad) -> LoadResult:
        articles = [item for _, item in good]
        if self.seen is not None:
            self.seen.add_articles(articles)
        return articles_upsert(items=articles, matcher=self.matcher)


ARTICLE_FIELDS = ("title", "url", "summary", "author", "published_at", "content_hash")


def articles_upsert(*, items: list[ArticleItem], matcher: MentionMatcher) -> LoadResult:
    if not items:
        return LoadResult()
    unique: dict[tuple[str, str], ArticleItem] = {}
    for item in items:
        unique[(item.feed, item.guid)] = item
    feeds = sorted({feed for feed, _ in unique})
    guids = sorted({guid for _, guid in unique})
    existing = {(a.feed, a.guid): a for a in Article.objects.filter(feed__in=feeds, guid__in=guids)}
    now = timezone.now()
    new, changed = [], []
    for key, item in unique.items():
        article = existing.get(key)
        if article is None:
            article = Article(feed=item.feed, guid=item.guid, fetched_at=now)
            new.append(article)
        elif article.content_hash == item.content_hash:
            continue
        else:
            changed.append(article)
        for field in ARTICLE_FIELDS:
            setattr(article, field, getattr(item, field))
        # A feed that dates nothing: the article counts as published when we first saw it.
        article.published_at = item.published_at or article.published_at or now
        article.updated_at = now
    Article.objects.bulk_create(new, batch_size=500)
    Article.objects.bulk_update(changed, [*ARTICLE_FIELDS, "updated_at"], batch_size=500)

    touched = new + changed
    if touched:
        ArticleAsset.objects.filter(article__in=[a.pk for a in changed]).delete()
        ArticleAsset.objects.bulk_create(
            [
                ArticleAsset(article_id=article.pk, asset_id=asset_id, matched_by=matched_by)
                for article in touched
                for asset_id, matched_by in matcher.match(f"{article.title}\n{article.summary}")
            ],
            ignore_conflicts=True,
        )
    return LoadResult(len(new), len(changed), len(items) - len(new) - len(changed))
