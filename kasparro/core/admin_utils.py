"""Small pieces shared by the apps' admin modules: JSON display and a bounded paginator."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString


def pretty_json(value: object) -> SafeString:
    """A JSON value indented in a <pre>, escaped."""
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def compact_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class BoundedCountPaginator(Paginator):
    """Counts at most `limit` rows, so a changelist over a huge table never counts them all.

    The count is `min(real count, limit)`, from `SELECT COUNT(*) FROM (SELECT ... LIMIT n)`
    without ordering; pages past the bound are reached by filtering. `bounded` tells the
    pagination template to show "10000+".
    """

    limit = 10_000

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if hasattr(object_list, "order_by"):
            return object_list.order_by()[: self.limit].count()
        return min(len(object_list), self.limit)

    @property
    def bounded(self) -> bool:
        return self.count >= self.limit


class ViewOnlyWithActionsMixin:
    """Rows are never added, edited or deleted here; the model's change permission (asked with
    no object) still gates the admin actions, which call services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False
