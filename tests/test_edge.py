"""The production edge, with the real parts: Debian's nginx with the repo's config
(deploy/nginx/kasparro.conf.template) in front of gunicorn with the repo's config.

- Clients that send half a request and hold the connection do not stop `/health`.
- A made-up X-Forwarded-For from outside does not change who the throttle counts.
- Oversize bodies, request lines and headers get the API's JSON error, from nginx itself.
- nginx serves /static/.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, gunicorn, process_env

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs Debian's)"),
]


def render(template: str, **values: str) -> str:
    """What the nginx image's envsubst does: ${NAME} for the names given, nothing else."""
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    return template


@contextlib.contextmanager
def nginx_in_front_of(upstream: str, root: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    static = root / "static"
    (static / "kasparro").mkdir(parents=True)
    (static / "kasparro" / "probe.css").write_text("body { color: black; }\n")
    site = render(
        (ROOT / "deploy" / "nginx" / "kasparro.conf.template").read_text(),
        UPSTREAM=upstream,
        LISTEN=f"127.0.0.1:{port}",
        STATIC_ROOT=str(static),
    )
    (root / "kasparro.conf").write_text(site)
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / name).mkdir()
    user = "user root;" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/kasparro.conf;
}}
"""
    )
    server = subprocess.Popen(
        [NGINX, "-c", str(root / "nginx.conf"), "-p", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert server.poll() is None, server.stderr.read()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield port, root
    finally:
        server.terminate()
        server.wait(timeout=10)


def request(port: int, method: str, path: str, *, body=None, headers=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


@pytest.fixture
def edge(tmp_path) -> Iterator[int]:
    env = process_env(
        NUM_PROXIES="1",
        API_RATE_PER_ADDRESS="5/min",
        FORWARDED_ALLOW_IPS="*",
        # Throttle counts of this test only, when they live in a shared Redis.
        CACHE_KEY_PREFIX=f"edge-{uuid.uuid4().hex[:8]}",
    )
    # One worker, few threads: easy to pin without a proxy; the throttle's count is in one place
    # even without Redis.
    env["GUNICORN_THREADS"] = "2"
    with gunicorn(env, workers=1) as base:
        upstream = base.removeprefix("http://")
        with nginx_in_front_of(upstream, tmp_path) as (port, _root):
            yield port


def test_slow_clients_holding_connections_do_not_stop_health(edge):
    stalled = []
    try:
        for _ in range(40):  # far more than gunicorn's 1 worker x 2 threads
            sock = socket.create_connection(("127.0.0.1", edge), 5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: kasparro\r\nX-Slow: ")
            stalled.append(sock)
        started = time.monotonic()
        status, _, body = request(edge, "GET", "/health", timeout=5)
        assert status == 200, body
        assert json.loads(body)["database_connected"] is True
        assert time.monotonic() - started < 3
    finally:
        for sock in stalled:
            sock.close()


def test_a_spoofed_forwarded_for_does_not_change_the_client(edge):
    codes = [
        request(edge, "GET", "/assets", headers={"X-Forwarded-For": f"203.0.113.{n}"})[0]
        for n in range(7)
    ]
    assert codes == [200] * 5 + [429] * 2


@pytest.mark.parametrize(
    "what, status, code",
    [
        ("body", 413, "payload_too_large"),
        ("uri", 414, "uri_too_long"),
        ("header", 431, "headers_too_large"),
    ],
)
def test_oversize_requests_get_json_errors(edge, what, status, code):
    path, body, headers = "/compare-runs", None, {}
    if what == "body":
        body = b"{" + b" " * (3 * 1024 * 1024) + b"}"
        headers = {"Content-Type": "application/json"}
    elif what == "uri":
        path = "/data?name=" + "a" * 9000
    else:
        headers = {"X-Padding": "b" * 9000}
    got, content_type, raw = request(
        edge, "POST" if body else "GET", path, body=body, headers=headers
    )
    assert got == status, raw[:300]
    assert content_type.startswith("application/json")
    error = json.loads(raw)["error"]
    assert (error["status"], error["code"]) == (status, code)


def test_long_requests_under_the_edge_limits_reach_the_app(edge):
    """What nginx lets through, gunicorn does too: the app answers, in JSON."""
    status, content_type, raw = request(
        edge, "GET", "/data?name=" + "a" * 7000, headers={"X-Padding": "b" * 7000}
    )
    assert status == 400, raw[:300]  # the app's own limit on `name`, named in its JSON
    assert content_type.startswith("application/json")
    assert json.loads(raw)["error"]["message"].startswith("name:")


def test_nginx_serves_static_files_and_the_app_the_rest(edge):
    status, _, body = request(edge, "GET", "/static/kasparro/probe.css")
    assert (status, body) == (200, b"body { color: black; }\n")
    status, content_type, _ = request(edge, "GET", "/data")
    assert status == 200 and content_type.startswith("application/json")
