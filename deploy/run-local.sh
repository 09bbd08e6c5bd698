#!/usr/bin/env bash
# `make run`: the zero-config stack on one machine. SQLite and a filesystem Celery broker in
# .state/, web (gunicorn) on :$PORT, one worker with an embedded beat, and a first ingestion
# of every source. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
PORT="${PORT:-8000}"
STATE="${KASPARRO_STATE_DIR:-$PWD/.state}"
export KASPARRO_STATE_DIR="$STATE"
# A person reads this terminal: console log lines (deployed processes keep JSON).
export LOG_FORMAT="${LOG_FORMAT:-console}"
mkdir -p "$STATE/broker/queue" "$STATE/broker/processed" "$STATE/logs"

$BIN/python manage.py migrate --noinput -v 0
$BIN/python manage.py collectstatic --noinput -v 0
$BIN/python manage.py bootstrap --port "$PORT"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

$BIN/celery -A kasparro worker --beat --loglevel INFO --concurrency 2 \
  --hostname "worker@%h" --schedule "$STATE/celerybeat-schedule" &
pids+=($!)
$BIN/gunicorn kasparro.wsgi:application -c deploy/gunicorn.conf.py --bind "0.0.0.0:$PORT" \
  --workers "${WEB_CONCURRENCY:-2}" &
pids+=($!)

# The first ingestion of every source, through the worker like every scheduled run.
$BIN/python manage.py etl enqueue

echo "web on http://127.0.0.1:$PORT  (Ctrl-C to stop)"
wait -n "${pids[@]}"
