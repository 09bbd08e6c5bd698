"""`manage.py bootstrap`: what `make run` needs before it starts the stack.

Creates (or resets) the local admin user, issues a fresh local API key, makes sure the hourly
schedules exist, and prints the credentials once. Meant for zero-config local use.
"""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from etl.services.schedules import schedules_ensure
from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_create

LOCAL_KEY_NAME = "local-dev"


class Command(BaseCommand):
    help = "Create the local admin and API key (printed once) and the hourly schedules."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000")
        parser.add_argument("--username", default=os.environ.get("ADMIN_USERNAME", "admin"))

    @transaction.atomic
    def handle(self, *args, port: str, username: str, **options):
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@localhost"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()

        APIKey.objects.filter(name=LOCAL_KEY_NAME).delete()
        _key, raw_key = apikey_create(name=LOCAL_KEY_NAME)
        schedules_ensure()

        base = f"http://127.0.0.1:{port}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "=" * 72,
                    f"  Dashboard {base}/",
                    f"  Admin     {base}/admin/",
                    f"            user: {username}   password: {password}",
                    f"  API key   {raw_key}",
                    f"            curl -H 'Authorization: Token {raw_key}' {base}/stats",
                    f"  Health    {base}/health",
                    "  (shown once: the password and key are stored hashed)",
                    "=" * 72,
                    "",
                ]
            )
        )
