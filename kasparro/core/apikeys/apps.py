from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "kasparro.core.apikeys"
    label = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from kasparro.core.apikeys import schema  # noqa: F401 - registers the OpenAPI extension
