"""Every setting read from the environment is documented in .env.example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting():
    settings_py = (ROOT / "kasparro" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_py))
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()
    assert len(read) > 30


def test_home_page_links_admin_docs_and_health(client):
    html = client.get("/").content.decode()
    for link in ("/admin/", "/api/docs/", "/health"):
        assert f'href="{link}"' in html
