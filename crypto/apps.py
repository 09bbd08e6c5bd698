from django.apps import AppConfig


class CryptoConfig(AppConfig):
    name = "crypto"
    verbose_name = "Market data and news"
