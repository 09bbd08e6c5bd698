#!/usr/bin/env bash
# Smoke test of the zero-config path: `make run` with no DATABASE_URL/REDIS_URL, sources pointed
# at local copies of the sample data; wait for /health, see ingested rows, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
tmp=$(mktemp -d)
WEB_PORT=${SMOKE_WEB_PORT:-18080}
UP_PORT=${SMOKE_UPSTREAM_PORT:-18081}

# Local upstreams: CoinGecko's /coins/markets and three RSS feeds, served as static files.
mkdir -p "$tmp/upstream/api/v3/coins" "$tmp/upstream/feeds"
cp tests/fixtures/coingecko/markets_page1.json "$tmp/upstream/api/v3/coins/markets"
cp tests/fixtures/rss/*.rss "$tmp/upstream/feeds/"
python3 -m http.server "$UP_PORT" --bind 127.0.0.1 --directory "$tmp/upstream" \
  >"$tmp/upstream.log" 2>&1 &
upstream=$!

run_env=(
  env -u DATABASE_URL -u REDIS_URL -u SECRET_KEY -u CELERY_BROKER_URL
  KASPARRO_STATE_DIR="$tmp/state" PORT="$WEB_PORT"
  COINGECKO_BASE_URL="http://127.0.0.1:$UP_PORT/api/v3"
  RSS_FEED_URLS="http://127.0.0.1:$UP_PORT/feeds/coindesk.rss,http://127.0.0.1:$UP_PORT/feeds/cointelegraph.rss,http://127.0.0.1:$UP_PORT/feeds/decrypt.rss"
)
"${run_env[@]}" setsid make run >"$tmp/run.log" 2>&1 &
stack=$!

finish() {
  kill -TERM -- "-$stack" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$stack" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$stack" 2>/dev/null || true
  kill "$upstream" 2>/dev/null || true
  rm -rf "$tmp"
}
fail() { echo "SMOKE FAILED: $*"; echo "--- make run output ---"; tail -n 80 "$tmp/run.log"; exit 1; }
trap finish EXIT

echo "waiting for /health on :$WEB_PORT"
for _ in $(seq 180); do
  curl -fsS "http://127.0.0.1:$WEB_PORT/health" >"$tmp/health.json" 2>/dev/null && break
  kill -0 "$stack" 2>/dev/null || fail "make run exited"
  sleep 1
done
[ -s "$tmp/health.json" ] || fail "/health never answered"
grep -q "API key   kas_" "$tmp/run.log" || fail "no API key printed"
grep -q "password:" "$tmp/run.log" || fail "no admin password printed"

echo "waiting for the first ingestion of every source"
count_script='
from crypto.models import Article, Quote
from runs.models import Run
done = Run.objects.exclude(status="running").values_list("source", "status")
print(Quote.objects.count(), Article.objects.count(), sorted(done))
'
for _ in $(seq 120); do
  line=$("${run_env[@]}" .venv/bin/python manage.py shell --no-imports -c "$count_script" 2>/dev/null | tail -n 1 || true)
  case "$line" in
    *"'coingecko'"*"'csv'"*"'rss'"*) break ;;
  esac
  sleep 1
done
echo "quotes, articles, runs: $line"
case "$line" in
  *"('coingecko', 'success')"*"('csv', 'success')"*"('rss', 'success')"*) ;;
  *) fail "expected three successful runs, got: $line" ;;
esac
quotes=${line%% *}
[ "$quotes" -gt 0 ] || fail "no quotes ingested"

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WEB_PORT/admin/login/")
[ "$code" = 200 ] || fail "admin login page answered $code"
curl -fsS "http://127.0.0.1:$WEB_PORT/" >"$tmp/home.html" || fail "the markets page failed"
grep -q 'href="/coins/bitcoin/"' "$tmp/home.html" || fail "the markets page lists no bitcoin"
# The sample history in data/csv_drop gives every listed asset a 7-day sparkline at once.
sparks=$(grep -c '<svg class="spark' "$tmp/home.html" || true)
[ "$sparks" -ge 40 ] || fail "the markets page shows $sparks sparklines (expected one per row)"
for page in /coins/bitcoin/ /articles/ /pipeline/ /static/vendor/plotly.min.js \
    /static/django_htmx/htmx-2.min.js /static/dashboard/favicon.svg; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WEB_PORT$page")
  [ "$code" = 200 ] || fail "$page answered $code"
done
# People read the terminal: console log lines, not JSON, and no whitenoise warning.
grep -q '^{"ts"' "$tmp/run.log" && fail "make run printed JSON log lines"
grep -q "No directory at" "$tmp/run.log" && fail "make run warned of a missing static directory"
echo "smoke OK"
