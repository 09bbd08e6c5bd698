"""Settings: every one read from the environment is documented in .env.example; a deployment's
SECRET_KEY must be long and random; drift policies name real sources and policies."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from kasparro.core.secret_key import secret_key_problem

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting():
    settings_py = (ROOT / "kasparro" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_py))
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()
    assert len(read) > 30


@pytest.mark.parametrize(
    "key, problem",
    [
        ("change-me-in-production", "under 50"),
        ("ci-only-not-secret", "under 50"),
        ("a" * 60, "fewer than 5 distinct"),
        ("change-me-in-production-" + secrets.token_hex(20), "placeholder 'change-me'"),
        (secrets.token_urlsafe(50), ""),
    ],
)
def test_secret_key_rule_names_what_is_wrong_with_a_key(key, problem):
    found = secret_key_problem(key)
    assert (problem in found) if problem else found == ""


@pytest.mark.parametrize("debug, refused", [("0", True), ("1", False)])
def test_a_placeholder_secret_key_is_refused_whenever_debug_is_off(debug, refused):
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": "sqlite:////tmp/kasparro-never-created.sqlite3",
            "SECRET_KEY": "change-me-in-production",
            "DEBUG": debug,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if refused:
        assert done.returncode != 0
        assert "SECRET_KEY is refused: it is 23 characters long, under 50" in done.stderr
    else:
        assert done.returncode == 0, done.stderr


def drift_policy_settings(policy: str, default: str = "evolve") -> subprocess.CompletedProcess:
    code = "from django.conf import settings as s; print(s.ETL_DRIFT_POLICY)"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": "sqlite:////tmp/kasparro-never-created.sqlite3",
            "DEBUG": "1",
            "ETL_DRIFT_POLICY": policy,
            "ETL_DRIFT_POLICY_DEFAULT": default,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_drift_policies_take_source_aliases_any_case_and_blanks():
    done = drift_policy_settings("RSS_FEED = Freeze, csv=pause")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "{'rss': 'freeze', 'csv': 'pause'}"


@pytest.mark.parametrize(
    ("policy", "default", "reason"),
    [
        ("coingeko=freeze", "evolve", "ETL_DRIFT_POLICY names 'coingeko', which is no source"),
        ("csv=melt", "evolve", "ETL_DRIFT_POLICY: 'melt' is no drift policy"),
        ("rss=freeze,rss_feed=pause", "evolve", "ETL_DRIFT_POLICY gives rss twice"),
        ("", "sometimes", "ETL_DRIFT_POLICY_DEFAULT: 'sometimes' is no drift policy"),
    ],
)
def test_a_drift_policy_naming_no_source_or_no_policy_stops_the_start(policy, default, reason):
    done = drift_policy_settings(policy, default)
    assert done.returncode != 0
    assert reason in done.stderr
