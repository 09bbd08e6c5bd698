from django.apps import AppConfig


def _changed(sender, instance, created=False, **kwargs) -> None:
    """A key saved or deleted: what Redis holds of it is forgotten (a new key is held nowhere)."""
    from kasparro.core.apikeys.services import apikey_forget

    if not created:
        apikey_forget([instance.prefix])


class ApiKeysConfig(AppConfig):
    name = "kasparro.core.apikeys"
    label = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from kasparro.core.apikeys import schema  # noqa: F401 - registers the OpenAPI extension
        from kasparro.core.apikeys.models import APIKey

        post_save.connect(_changed, sender=APIKey, dispatch_uid="apikey-forget-saved")
        post_delete.connect(_changed, sender=APIKey, dispatch_uid="apikey-forget-deleted")
