"""`manage.py apikey create NAME | list | revoke NAME`."""

from __future__ import annotations

import argparse
import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_create, apikey_revoke
from kasparro.core.errors import ApplicationError


def _whole_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, 1 or more: {value!r}")
    return days


class Command(BaseCommand):
    help = "Create, list and revoke API keys. A new key is printed once and stored hashed."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it once")
        create.add_argument("name")
        create.add_argument(
            "--expires-days",
            type=_whole_days,
            default=None,
            metavar="N",
            help="the key stops working after N days (a whole number, 1 or more)",
        )
        sub.add_parser("list", help="list keys (never the keys themselves)")
        revoke = sub.add_parser("revoke", help="revoke a key by name")
        revoke.add_argument("name")

    def handle(self, *args, action: str, **options):
        try:
            if action == "create":
                days = options["expires_days"]
                expires = None if days is None else timezone.now() + dt.timedelta(days=days)
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
