"""Gunicorn settings for the container: `gunicorn kasparro.wsgi:application -c <this file>`.

Environment: PORT (default 8000), WEB_CONCURRENCY (workers; default 2 x cores + 1, at most 8),
GUNICORN_THREADS (per worker, default 4), GUNICORN_TIMEOUT (default 60), GUNICORN_MAX_REQUESTS
(recycle a worker after about this many requests; default 0, never), FORWARDED_ALLOW_IPS
(proxies trusted for X-Forwarded-Proto; docker-compose: its nginx).
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import socket
import tempfile


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (docker --cpuset-cpus)
    except (AttributeError, OSError):
        return multiprocessing.cpu_count()


# Every interface: inside a container, 127.0.0.1 would be unreachable from the outside.
bind = f"0.0.0.0:{_int_env('PORT', 8000)}"
workers = _int_env("WEB_CONCURRENCY", min(2 * _cpu_count() + 1, 8))
# Threads per worker: a client that sends its request slowly holds one thread, not a whole
# worker (nginx in front buffers requests anyway; `make run` has no nginx).
worker_class = "gthread"
threads = _int_env("GUNICORN_THREADS", 4)
timeout = _int_env("GUNICORN_TIMEOUT", 60)
# As long as nginx lets through (8 KiB request line and header), so that whatever passes the
# edge reaches the app, which answers in JSON; gunicorn's own 414/431 pages are HTML.
limit_request_line = 8190
limit_request_field_size = 8190
graceful_timeout = 30
keepalive = 5
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections over them. On one shared socket the worker that wakes first takes a burst of
# connections, and a client's keep-alive connections all on one worker halve what it gets:
# 16 connections of wrk at a JSON 404, six runs of 2 s, 572-1,659 req/s on a shared socket
# (two modes), 1,021-1,576 with a socket per worker (api_floor.py, README). The price: a
# connection waiting in a worker's queue when that worker dies is reset, so the default keeps
# workers alive (no recycling, below). `on_starting` refuses a port already in use, which
# SO_REUSEPORT would otherwise share silently with the server holding it, and turns this off
# where it cannot work (a unix socket, port 0, sockets handed over by systemd or a USR2
# upgrade; a USR2 upgrade of a server listening per worker is not supported: restart it).
reuse_port = True

# Workers are not recycled by default: recycling every 1,000 requests restarted a worker every
# few seconds under load (each restart a second of a busy core and a tail of slow requests),
# and left a Prometheus file per dead worker for every scrape of /metrics to read. A worker's
# memory reaches a plateau and stays there without it (README, "Costs at scale").
# GUNICORN_MAX_REQUESTS turns it back on, spread by a jitter of a quarter of it so that the
# workers never restart together.
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 4

# Heartbeat files in memory: a container's /tmp may be an overlay on a slow disk. The same file
# serves `make run` (deploy/run-local.sh), so fall back to gunicorn's default without /dev/shm.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - a tmpfs

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Which front ends may set X-Forwarded-Proto / -For. Gunicorn's own default (127.0.0.1) only
# trusts a proxy in the same container; set "*" behind a load balancer you control.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Prometheus multiprocess mode: every worker writes its metrics under this folder and /metrics
# adds them up, so counters stay right whichever worker served a request. The folder is made
# (and emptied) by the master before any worker imports prometheus_client.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"kasparro-prometheus-{_int_env('PORT', 8000)}"),
)


def on_starting(server) -> None:
    _listen_per_worker(server)
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _listen_per_worker(server) -> None:
    """Keep `reuse_port` only where a socket per worker works: TCP addresses with a fixed port
    and no sockets handed over (systemd's LISTEN_FDS, a USR2 upgrade's GUNICORN_FD). A unix
    socket would be recreated by each worker, port 0 would differ per worker. Then refuse to
    start on an address another server listens on: with SO_REUSEPORT the kernel would share
    it between the two servers instead of refusing it as a plain bind does."""
    addresses = server.cfg.address
    if (
        "LISTEN_FDS" in os.environ
        or "GUNICORN_FD" in os.environ
        or not all(isinstance(a, tuple) and a[1] for a in addresses)
    ):
        server.cfg.set("reuse_port", False)
        return
    for host, port, *_ in addresses:
        probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use by another server" if exc.errno == errno.EADDRINUSE else exc
            server.log.error("cannot listen on %s:%s: %s", host, port, reason)
            raise SystemExit(1) from exc
        finally:
            probe.close()
