"""Per-source state: leases (which run holds the source) and policies (drift policy, pause)."""

from __future__ import annotations

from django.contrib import admin

from etl.models import SourceLease, SourcePolicy
from kasparro.core.admin_utils import NotAddedHereMixin


@admin.register(SourceLease)
class SourceLeaseAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = ["source", "holder", "renewed_at", "expires_at"]
    readonly_fields = ["source", "holder", "renewed_at", "expires_at"]


@admin.register(SourcePolicy)
class SourcePolicyAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = ["source", "drift_policy", "paused", "paused_reason", "updated_at"]
    list_editable = ["drift_policy", "paused"]
    readonly_fields = ["paused_reason", "paused_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not obj.paused:  # an operator lifted the pause: no stale reason stays behind
            obj.paused_reason, obj.paused_at = "", None
        super().save_model(request, obj, form, change)
