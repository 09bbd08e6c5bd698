"""The project package: it composes (settings, urls, the Celery app, wsgi/asgi); the shared floor
the apps stand on is kasparro.core."""

from kasparro.celery import app as celery_app

__all__ = ("celery_app",)
