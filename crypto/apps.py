from django.apps import AppConfig


class CryptoConfig(AppConfig):
    name = "crypto"
    verbose_name = "Market data and news"

    def ready(self) -> None:
        from crypto.versions import connect_signals

        connect_signals()
