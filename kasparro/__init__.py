"""Kasparro project package: settings, urls, the Celery app, logging and API error handling."""

from kasparro.celery import app as celery_app

__all__ = ("celery_app",)
