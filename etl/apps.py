from django.apps import AppConfig


class EtlConfig(AppConfig):
    name = "etl"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from etl.services.schedules import schedules_ensure_on_migrate

        post_migrate.connect(schedules_ensure_on_migrate, sender=self)
