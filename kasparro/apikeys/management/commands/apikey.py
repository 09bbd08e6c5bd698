"""`manage.py apikey create NAME | list | revoke NAME`."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from kasparro.apikeys.models import APIKey
from kasparro.apikeys.services import apikey_create, apikey_revoke
from kasparro.errors import ApplicationError


class Command(BaseCommand):
    help = "Create, list and revoke API keys. A new key is printed once and stored hashed."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it once")
        create.add_argument("name")
        create.add_argument("--expires-days", type=int, default=None)
        sub.add_parser("list", help="list keys (never the keys themselves)")
        revoke = sub.add_parser("revoke", help="revoke a key by name")
        revoke.add_argument("name")

    def handle(self, *args, action: str, **options):
        try:
            if action == "create":
                days = options["expires_days"]
                expires = timezone.now() + dt.timedelta(days=days) if days else None
                _key, raw = apikey_create(name=options["name"], expires_at=expires)
                self.stdout.write(raw)
            elif action == "revoke":
                key = apikey_revoke(name=options["name"])
                self.stdout.write(f"revoked {key.name}")
            else:
                for key in APIKey.objects.all():
                    state = "active" if key.is_active else "inactive"
                    self.stdout.write(
                        f"{key.name}\t{key.prefix}\t{state}\tcreated {key.created_at:%Y-%m-%d}"
                        f"\texpires {key.expires_at or '-'}"
                    )
        except ApplicationError as exc:
            raise CommandError(str(exc)) from exc
