from django.apps import AppConfig


class EtlConfig(AppConfig):
    name = "etl"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from etl import checks  # noqa: F401 - registers the start-up checks
        from etl.metrics import EtlCollector
        from etl.services.schedules import schedules_ensure_on_migrate
        from kasparro.core.metrics import register_collector

        post_migrate.connect(schedules_ensure_on_migrate, sender=self)
        register_collector(EtlCollector())
