"""The one Celery app of the project; configuration comes from Django settings (`CELERY_*`)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kasparro.settings")

app = Celery("kasparro")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
