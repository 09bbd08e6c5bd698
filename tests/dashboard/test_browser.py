"""The dashboard in a real browser: pages load without a console error or a failed request,
the asset chart draws every point it shows, search narrows the table, the range buttons change
the chart, and dark mode renders."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from crypto.models import Quote

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PAGES = [
    "/",
    "/coins/bitcoin/",
    "/coins/bitcoin/?range=all&interval=day",
    "/articles/",
    "/pipeline/",
]


def problems(browser) -> list[str]:
    """Console errors and failed loads (a 404 for a script, a favicon, a JS exception)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(browser, live_server, path: str) -> None:
    browser.get(live_server.url + path)
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def chart_points(browser, selector: str = "#price-chart") -> int:
    WebDriverWait(browser, 20).until(
        lambda b: b.find_element(By.CSS_SELECTOR, selector).get_attribute("data-drawn")
    )
    return int(browser.find_element(By.CSS_SELECTOR, selector).get_attribute("data-drawn"))


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_without_console_errors_or_failed_requests(browser, live_server, loaded, path):
    open_page(browser, live_server, path)
    if "coins" in path:
        chart_points(browser)
    if "pipeline" in path:
        chart_points(browser, "#runs-chart")
    assert problems(browser) == []


def test_the_asset_chart_draws_as_many_points_as_the_history_it_shows(browser, live_server, loaded):
    open_page(browser, live_server, "/coins/bitcoin/?range=all&interval=raw")
    assert chart_points(browser) == Quote.objects.filter(asset__slug="bitcoin").count()
    traces = browser.execute_script(
        "return document.getElementById('price-chart').data.map(t => t.name)"
    )
    assert {"coingecko", "csv"} <= set(traces)  # one line per source on the same axes


def test_the_range_buttons_change_the_chart(browser, live_server, loaded):
    open_page(browser, live_server, "/coins/bitcoin/?range=all&interval=raw")
    everything = chart_points(browser)
    browser.find_element(By.CSS_SELECTOR, 'a[data-range="24h"]').click()
    WebDriverWait(browser, 20).until(lambda b: "range=24h" in b.current_url)
    shown = chart_points(browser)
    current = browser.find_element(By.CSS_SELECTOR, "a[data-range][aria-current]").text
    assert current == "24h" and shown <= everything


def test_search_narrows_the_table_as_one_types(browser, live_server, loaded):
    open_page(browser, live_server, "/")
    rows = lambda b: len(b.find_elements(By.CSS_SELECTOR, "#markets tbody tr"))  # noqa: E731
    before = rows(browser)
    browser.find_element(By.CSS_SELECTOR, "input[name=q]").send_keys("sol")
    WebDriverWait(browser, 20).until(lambda b: 0 < rows(b) < before)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#markets tbody strong")]
    assert "Solana" in names and "Bitcoin" not in names
    assert "q=sol" in browser.current_url  # the address can be shared
    assert problems(browser) == []


def test_dark_mode_renders(browser, live_server, loaded):
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    open_page(browser, live_server, "/coins/bitcoin/")
    chart_points(browser)
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 24, 39)"
    assert problems(browser) == []


@pytest.mark.parametrize("path", ["/", "/coins/bitcoin/", "/articles/", "/pipeline/"])
def test_pages_fit_a_phone_without_sideways_scrolling(browser, live_server, loaded, path):
    browser.set_window_size(390, 844)
    open_page(browser, live_server, path)
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{path} is {widths[0]}px wide on a {widths[1]}px screen"


def test_admin_charts_render_without_console_errors(browser, live_server, loaded, admin_user):
    from django.conf import settings as django_settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from crypto.models import Asset

    session = SessionStore()
    session[SESSION_KEY] = str(admin_user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = admin_user.get_session_auth_hash()
    session.save()
    open_page(browser, live_server, "/admin/login/")
    browser.add_cookie(
        {"name": django_settings.SESSION_COOKIE_NAME, "value": session.session_key, "path": "/"}
    )
    asset = Asset.objects.get(slug="bitcoin")
    open_page(browser, live_server, f"/admin/crypto/asset/{asset.pk}/change/")
    assert chart_points(browser) > 0
    open_page(browser, live_server, "/admin/runs/run/")
    assert chart_points(browser, "#runs-chart") == 3
    assert problems(browser) == []
