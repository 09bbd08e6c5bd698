"""Raw pages, as the sources produced them: read-only (deletable)."""

from __future__ import annotations

from django.contrib import admin

from etl.models import RawRecord
from kasparro.core.admin_utils import ReadOnlyAdminMixin


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    deletable = True
    list_display = ["fetched_at", "source", "page_ref", "item_count", "content_hash"]
    list_filter = ["source"]
    show_full_result_count = False
    ordering = ["-fetched_at"]
