"""API keys in admin. A new key is shown once, on the page that answers its creation: never in
a redirect's message, which travels in a signed (readable) cookie."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_create, apikey_forget


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "expires_at", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = apikey_create(name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.prefix, obj.hashed_key = key.pk, key.prefix, key.hashed_key
        request._kasparro_new_api_key = raw

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(request, "_kasparro_new_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        # The admin's views are never cached (no-store), this page included.
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/created.html",
            {**self.admin_site.each_context(request), "key": obj, "raw_key": raw},
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked_at__isnull=True)
        apikey_forget(revoked.values_list("prefix", flat=True))
        count = revoked.update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")
