"""What a hostile or careless client meets at the Django level (issue 11's table, rows 2-4, 6-8,
10 and 11; a DataError's 400 is in test_data.py): every answer is the one JSON error shape,
never a 500 or an HTML page."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kasparro.core.apikeys.models import APIKey

pytestmark = pytest.mark.django_db


def error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["error"]


def test_spoofed_forwarded_for_does_not_change_the_client_id_without_a_proxy(client, settings):
    """NUM_PROXIES=0 (the default): the client is the peer address, whatever it claims."""
    settings.API_RATE_PER_ADDRESS = "3/min"
    codes = [
        client.get("/assets", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]


def test_wrong_keys_are_throttled_too(client, settings):
    """A request whose key is refused is charged to its address before its 401: a client
    guessing keys meets 429 after the limit, not an endless stream of 401s."""
    settings.API_RATE_PER_ADDRESS = "3/min"
    codes = [
        client.get("/stats", HTTP_X_API_KEY=f"kas_wrong{n}_secret").status_code for n in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]
    assert error(client.get("/stats"))["code"] == "throttled"


@pytest.mark.parametrize("path", ["/assets/%00", "/assets/%00/history", "/assets/a%01b"])
def test_control_characters_in_a_path_are_a_404_json(client, path, caplog):
    response = client.get(path)
    assert response.status_code == 404
    assert error(response)["status"] == 404
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_deeply_nested_json_is_a_400(client, api_key):
    body = "[" * 5000 + "]" * 5000
    response = client.post(
        "/compare-runs", body, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert response.status_code == 400
    assert "nested too deeply" in error(response)["message"]


def test_an_oversize_body_is_a_413(client, api_key, settings):
    body = json.dumps({"run_id_1": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    response = client.post(
        "/compare-runs", body, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert response.status_code == 413
    assert error(response)["code"] == "payload_too_large"


@pytest.mark.parametrize("days", ["0", "-1", "1.5", "soon"])
def test_apikey_expiry_takes_whole_days_of_one_or_more(days):
    with pytest.raises(CommandError, match="whole number of days"):
        call_command("apikey", "create", "analyst", "--expires-days", days)
    assert not APIKey.objects.exists()


def test_apikey_with_one_day_expires(capsys):
    call_command("apikey", "create", "analyst", "--expires-days", "1")
    assert APIKey.objects.get().expires_at is not None


def test_health_and_metrics_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/data").status_code == 301
    assert client.get("/health").status_code in (200, 503)
    assert client.get("/metrics").status_code == 200


def test_a_key_created_in_admin_is_shown_once_on_the_page_and_never_in_a_cookie(admin_client):
    response = admin_client.post("/admin/apikeys/apikey/add/", {"name": "dashboard"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r'id="api-key"[^>]*>([^<]+)<', response.content.decode()).group(1)
    assert raw.startswith("kas_")
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert raw not in admin_client.get("/admin/apikeys/apikey/").content.decode()
    assert APIKey.objects.get(name="dashboard").hashed_key != raw
    assert admin_client.get("/stats", HTTP_X_API_KEY=raw).status_code == 200


def test_admin_works_with_debug_off_before_and_after_collectstatic(client, settings, tmp_path):
    """The deployment storage: plain names before `collectstatic` (a fresh clone: no 500 for a
    missing manifest), hashed ones after it (the image)."""
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "kasparro.core.staticfiles.StaticStorage"},
    }
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert "/static/admin/css/base.css" in page.content.decode()

    call_command("collectstatic", "--noinput", verbosity=0)
    from django.contrib.staticfiles.storage import staticfiles_storage

    staticfiles_storage._setup()  # the storage reads its manifest once, at start
    hashed = re.search(
        r"/static/admin/css/base\.[0-9a-f]{12}\.css", client.get("/admin/login/").content.decode()
    )
    assert hashed, "collected files are served under hashed names"
