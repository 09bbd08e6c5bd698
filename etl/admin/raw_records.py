"""Raw pages, as the sources produced them: read-only (deletable; bodies left without a page
go at the next prune).

The list reads no payload and no body, only their sizes: a page of 100 CSV pages read 19 MB of
page bodies before."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.template.defaultfilters import filesizeformat

from etl.models import RawRecord
from kasparro.core.admin_utils import ReadOnlyAdminMixin


class _SizesOnly(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("payload", "body__data")


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    deletable = True
    list_display = [
        "fetched_at",
        "last_seen_at",
        "source",
        "page_ref",
        "item_count",
        "size",
        "content_hash",
    ]
    list_filter = ["source"]
    list_select_related = ["body"]
    show_full_result_count = False
    ordering = ["-fetched_at"]

    def get_changelist(self, request, **kwargs):
        return _SizesOnly

    @admin.display(description="size", ordering="payload_size")
    def size(self, obj: RawRecord) -> str:
        body = obj.body.size if obj.body is not None else 0
        return filesizeformat(obj.payload_size + body)
