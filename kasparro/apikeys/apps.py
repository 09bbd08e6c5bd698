from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "kasparro.apikeys"
    label = "apikeys"
    verbose_name = "API keys"
