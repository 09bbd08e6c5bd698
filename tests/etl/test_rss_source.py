"""The RSS/Atom source on its own: link normalization, parsing real feeds, hostile bodies."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from etl.exceptions import EtlError, ItemError
from etl.sources.rss import RssSource, normalize_link, strip_html, strip_tracking

RSS_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rss"
FEED_URL = "https://feeds.example.com/news.rss"


@pytest.fixture
def source():
    return RssSource(feed_urls=[FEED_URL])


def parse(source, body: bytes, url: str = FEED_URL) -> list[dict]:
    return source._parse(url, body)


def articles(source, body: bytes, url: str = FEED_URL) -> list:
    return [source.normalize(item) for item in parse(source, body, url)]


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Example</title><link>https://example.com/</link><description>d</description>"
        + "".join(f"<item>{item}</item>" for item in items)
        + "</channel></rss>"
    ).encode()


# --- normalize_link ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a", "https://example.com/a"),
        ("HTTPS://Example.COM/Path/Case", "https://example.com/Path/Case"),
        ("https://example.com/a/", "https://example.com/a"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
        ("https://example.com/a?UTM_Campaign=x&id=3", "https://example.com/a?id=3"),
        ("https://example.com/a?id=3&utm_content=y#top", "https://example.com/a?id=3"),
        ("https://example.com/a?fbclid=1&gclid=2&p=9", "https://example.com/a?p=9"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
    ],
)
def test_normalize_link_lowercases_the_host_and_drops_tracking_and_fragments(url, expected):
    assert normalize_link(url) == expected


def test_normalize_link_is_idempotent():
    once = normalize_link("HTTPS://News.Example.com/x/?b=2&utm_source=t&a=1#frag")
    assert normalize_link(once) == once


def test_strip_html_removes_tags_and_unescapes_entities():
    assert strip_html("<p>Hello <b>world</b> &amp; co</p><img src=x>") == "Hello world & co"


# --- the real sample feeds --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feed", "count"),
    [("coindesk", 25), ("cointelegraph", 30), ("decrypt", 58), ("theblock", 19)],
)
def test_sample_feeds_parse_completely(source, feed, count):
    url = f"https://feeds.example.com/{feed}.rss"

    items = articles(source, (RSS_FIXTURES / f"{feed}.rss").read_bytes(), url)

    assert len(items) == count
    assert len({a.guid for a in items}) == count
    for article in items:
        assert article.feed == url
        assert article.guid
        assert article.title and article.title == article.title.strip()
        assert "<" not in article.title and "<" not in article.summary
        assert article.url.startswith("https://")
        assert article.published_at is not None
        assert article.published_at.utcoffset() == dt.timedelta(0)
        assert len(article.content_hash) == 64


def test_coindesk_first_entry_in_detail(source):
    first = articles(source, (RSS_FIXTURES / "coindesk.rss").read_bytes())[0]

    assert first.guid == "9aef2b42-3854-4f38-8336-c157cc2d05a1"
    assert first.title == (
        "Citadel Securities and DeFi Waging War of Words Through SEC Correspondence"
    )
    assert first.url.startswith("https://www.coindesk.com/policy/2025/12/12/citadel-securities")
    assert first.author == "Jesse Hamilton"
    assert first.published_at == dt.datetime(2025, 12, 12, 22, 20, 18, tzinfo=dt.UTC)


# Every CoinDesk item has a <description> followed by an empty <dc:description/>, and feedparser
# maps both to `summary`: the empty one must not win, or all 25 CoinDesk articles would be
# stored without a summary.
def test_an_empty_dc_description_does_not_erase_the_summary(source):
    items = articles(source, (RSS_FIXTURES / "coindesk.rss").read_bytes())

    assert items[0].summary.startswith("The investing giant had asked the U.S. Securities")
    assert all(a.summary for a in items)


def test_parsing_the_same_feed_twice_gives_the_same_articles(source):
    body = (RSS_FIXTURES / "decrypt.rss").read_bytes()

    assert articles(source, body) == articles(source, body)


# --- Atom and edge cases ----------------------------------------------------------------------

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Example Chain News</title>
  <link href="https://news.example.org/"/>
  <updated>2025-12-12T18:30:02Z</updated>
  <id>urn:uuid:60a76c80-d399-11d9-b93c-0003939e0af6</id>
  <entry>
    <title>Solana ETF inflows hit a record</title>
    <link rel="alternate" type="text/html"
          href="https://news.example.org/2025/12/solana-etf?utm_medium=feed"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <published>2025-12-12T17:00:00+01:00</published>
    <updated>2025-12-12T18:30:02Z</updated>
    <author><name>Jane Doe</name></author>
    <summary type="html">&lt;p&gt;Inflows into &lt;b&gt;SOL&lt;/b&gt; funds&lt;/p&gt;</summary>
  </entry>
  <entry>
    <title type="html">Bitcoin &amp;lt;3 miners</title>
    <link href="https://news.example.org/2025/12/miners"/>
    <id>tag:news.example.org,2025:miners</id>
    <updated>2025-12-11T08:00:00Z</updated>
    <content type="xhtml">
      <div xmlns="http://www.w3.org/1999/xhtml"><p>Hash rate <em>up</em> again.</p></div>
    </content>
  </entry>
</feed>
"""


def test_atom_entries_give_guid_link_author_summary_and_date(source):
    solana, miners = articles(source, ATOM)

    assert solana.guid == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    assert solana.title == "Solana ETF inflows hit a record"
    assert solana.url == "https://news.example.org/2025/12/solana-etf"  # stored without tracking
    assert solana.author == "Jane Doe"
    assert solana.summary == "Inflows into SOL funds"
    assert solana.published_at == dt.datetime(2025, 12, 12, 16, 0, tzinfo=dt.UTC)

    assert miners.guid == "tag:news.example.org,2025:miners"
    assert miners.title == "Bitcoin <3 miners"
    assert miners.summary == "Hash rate up again."  # from <content>, as there is no summary
    assert miners.published_at == dt.datetime(2025, 12, 11, 8, 0, tzinfo=dt.UTC)  # <updated>


def test_an_entry_without_guid_is_keyed_by_its_normalized_link(source):
    [article] = articles(
        source,
        rss(
            "<title>No guid</title>"
            "<link>https://Example.COM/post/1/?utm_source=rss&amp;id=7#top</link>"
        ),
    )

    assert article.guid == "https://example.com/post/1?id=7"
    assert article.url == "https://Example.COM/post/1/?id=7#top"  # only the tracking is gone


def test_the_same_link_with_other_tracking_params_is_the_same_guid(source):
    a, b = articles(
        source,
        rss(
            "<title>A</title><link>https://example.com/p?utm_source=x</link>",
            "<title>A</title><link>https://example.com/p/?utm_source=y#c</link>",
        ),
    )

    assert a.guid == b.guid


@pytest.mark.parametrize(
    "entry",
    [
        "<title>Orphan</title><description>x</description>",
        "<title>Script</title><link>javascript:alert(1)</link>",
    ],
    ids=["no-link", "non-http-link"],
)
def test_an_entry_with_neither_guid_nor_link_is_an_item_error(source, entry):
    [item] = parse(source, rss(entry))

    with pytest.raises(ItemError) as caught:
        source.normalize(item)
    assert caught.value.code == "missing_key"


def test_an_entry_without_title_is_an_item_error(source):
    [item] = parse(source, rss("<guid>g1</guid><description>body</description>"))

    with pytest.raises(ItemError) as caught:
        source.normalize(item)
    assert caught.value.code == "missing_field"


def test_html_is_stripped_from_titles_and_summaries(source):
    [article] = articles(
        source,
        rss(
            "<guid>g1</guid>"
            "<title><![CDATA[A <i>title</i> &amp; more]]></title>"
            "<description>&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt; &amp;amp; co&lt;/p&gt;"
            "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;&lt;/script&gt;</description>"
        ),
    )

    assert article.title == "A title & more"
    assert article.summary == "Hello world & co"


def test_content_hash_changes_with_the_content(source):
    before, after = articles(
        source,
        rss(
            "<guid>g1</guid><title>Before</title><description>x</description>",
            "<guid>g1</guid><title>After</title><description>x</description>",
        ),
    )

    assert before.guid == after.guid
    assert before.content_hash != after.content_hash


@pytest.mark.parametrize("item", [None, "text", ["a"], 3])
def test_normalize_rejects_what_is_not_an_entry(source, item):
    with pytest.raises(ItemError) as caught:
        source.normalize(item)
    assert caught.value.code == "malformed"


def test_a_feed_with_no_entries_is_empty_not_an_error(source):
    assert parse(source, rss()) == []


# --- bodies that are not feeds ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage \x00\xff\xfe",
        b'{"error": "rate limited"}',
        b"<?xml version='1.0'?><rss version='2.0'></rss>",
        pytest.param(b"<html><body>hi</body></html>", id="html-page"),
        pytest.param(
            b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
            b"<body><h1>Checking your browser</h1></body></html>",
            id="html-challenge-page",
        ),
    ],
)
def test_a_body_that_is_not_a_feed_is_an_etl_error(source, body):
    # feedparser reads an HTML page as a feed with no entries (bozo False, `feed.summary` set):
    # a 200 HTML page must fail that feed, not pass as an empty feed in a run that succeeds
    # with nothing.
    with pytest.raises(EtlError, match=FEED_URL):
        parse(source, body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>t</title>
<item><guid>g1</guid><title>&lol9;</title><description>&lol9;</description></item>
</channel></rss>
"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY a "'
    + b"a" * 50_000
    + b'">]>\n<rss version="2.0"><channel><title>t</title><item><guid>g1</guid><title>'
    + b"&a;" * 20_000
    + b"</title></item></channel></rss>"
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, QUADRATIC_BLOWUP], ids=["billion", "quadratic"])
def test_entity_expansion_bombs_neither_hang_nor_expand(source, body):
    started = time.perf_counter()
    try:
        items = parse(source, body)
    except EtlError:
        items = []
    elapsed = time.perf_counter() - started

    assert elapsed < 5
    for item in items:
        assert len(item["title"]) + len(item["summary"]) < 100_000


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
        ("https://Example.com/A/?id=3&fbclid=x#c", "https://Example.com/A/?id=3#c"),
        ("https://example.com/a?gclid=1&p=9", "https://example.com/a?p=9"),
        ("https://example.com/a?id=3", "https://example.com/a?id=3"),
        ("https://example.com/a?q=a%20b&utm_x=1", "https://example.com/a?q=a+b"),
    ],
)
def test_stored_links_lose_their_tracking_parameters_and_nothing_else(url, expected):
    assert strip_tracking(url) == expected


def test_article_links_from_the_real_feeds_carry_no_tracking(source):
    links = [
        a.url
        for name in ("cointelegraph.rss", "coindesk.rss", "decrypt.rss")
        for a in articles(source, (RSS_FIXTURES / name).read_bytes())
    ]
    assert links and not [link for link in links if "utm_" in link]
