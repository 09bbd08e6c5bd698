"""Small pieces shared by the apps' admin modules: JSON display, a bounded paginator, and the
permission mixins of rows the admin does not create (NotAddedHereMixin) or only shows
(ReadOnlyAdminMixin)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString


def pretty_json(value: object, *, sort_keys: bool = True) -> SafeString:
    """A JSON value indented in a <pre>, escaped; keys sorted unless `sort_keys=False` (a
    sample shown in the order it arrived)."""
    return format_html(
        "<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=sort_keys, default=str)
    )


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


class NotAddedHereMixin:
    """Rows the application creates (the pipeline, start-up), never the admin: there is no "Add"
    button. They may still be edited or deleted, as the admin allows. For a ModelAdmin or an
    inline (which Django asks with the parent object)."""

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdminMixin(NotAddedHereMixin):
    """Rows people read and the application writes: never added, edited or deleted in the
    admin, so every page of a row is a view page. For a ModelAdmin or an inline.

    Two exceptions, each off unless an admin turns it on:

    - `with_actions`: the model's change permission is kept when Django asks it with no object,
      which it does before offering the admin actions declared with `permissions=["change"]`
      (they call services). Whoever holds it can run the actions; no row becomes editable.
    - `deletable`: deleting is left to the model's delete permission.
    """

    with_actions = False
    deletable = False

    def has_change_permission(self, request, obj=None):
        return self.with_actions and obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        # The declared fields too: then no form field (nor its widget's media) is built for
        # them. Django leaves them out of a view-only ModelAdmin's form, not of an inline's.
        return list(
            dict.fromkeys([*(self.fields or ()), *super().get_readonly_fields(request, obj)])
        )


# Colours of status words, for badges: green is done well, amber needs a look, red went wrong.
BADGE_TONES = {
    "success": "#047857",
    "accepted": "#047857",
    "replayed": "#047857",
    "info": "#1d4ed8",
    "running": "#1d4ed8",
    "open": "#b45309",
    "partial": "#b45309",
    "warning": "#b45309",
    "failed": "#b91c1c",
    "breaking": "#b91c1c",
    "rejected": "#6b7280",
    "discarded": "#6b7280",
    "skipped": "#6b7280",
}


def badge(value: str, label: str | None = None) -> SafeString:
    """A status as a coloured pill (grey for a word without a tone)."""
    return format_html(
        '<span class="kasparro-badge" style="display:inline-block;padding:0 .5em;'
        'border-radius:1em;color:#fff;font-weight:600;font-size:.85em;background:{}">{}</span>',
        BADGE_TONES.get(value, "#6b7280"),
        label or value,
    )


def status_column(field: str, description: str | None = None):
    """A changelist column showing `field` (a choice) as a badge, sortable by it."""

    @admin.display(description=description or field.replace("_", " "), ordering=field)
    def column(obj) -> SafeString:
        value = getattr(obj, field)
        display = getattr(obj, f"get_{field}_display", None)
        return badge(value, display() if display else value)

    column.__name__ = f"{field}_badge"
    return column
