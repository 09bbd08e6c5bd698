"""Checkpoints: a source's cursor, reset (the next run starts from scratch) or rewound by hand,
with a confirmation and an audit entry; refused while a run holds the source."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from etl.models import Checkpoint
from etl.services.checkpoints import checkpoint_check_writable, checkpoint_reset, checkpoint_rewind
from etl.sources import get_source_class
from kasparro.core.admin_utils import NotAddedHereMixin, compact_json, pretty_json
from kasparro.core.errors import ApplicationError
from runs.admin import run_link


def cursor_summary(source: str, cursor: dict, limit: int = 100) -> str:
    """What the source says about its cursor, else the cursor's JSON, on one short line."""
    try:
        text = get_source_class(source).describe_cursor(cursor or {})
    except (KeyError, TypeError, AttributeError, ValueError):
        text = compact_json(cursor)
    return text if len(text) <= limit else text[: limit - 1] + "…"


CONFIRM_LABEL = "I understand the next run resumes from this cursor"


class CheckpointForm(forms.ModelForm):
    """Rewind: edit the cursor, and confirm what it means."""

    confirm = forms.BooleanField(label=CONFIRM_LABEL, required=True)

    class Meta:
        model = Checkpoint
        fields = ["cursor"]
        help_texts = {"cursor": "JSON object. {} starts the source from scratch."}

    def clean_cursor(self):
        cursor = self.cleaned_data.get("cursor")
        if not isinstance(cursor, dict):
            raise forms.ValidationError("Enter a JSON object ({} starts from scratch).")
        return cursor

    def clean(self):
        cleaned = super().clean()
        try:
            checkpoint_check_writable(source=self.instance.source)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(Checkpoint)
class CheckpointAdmin(NotAddedHereMixin, admin.ModelAdmin):
    list_display = ["source", "cursor_short", "updated_at", "run_column"]
    list_select_related = ["run"]
    ordering = ["source"]
    search_fields = ["source"]
    form = CheckpointForm
    fields = ["source", "cursor_pretty", "cursor", "confirm", "updated_at", "run_column"]
    readonly_fields = ["source", "cursor_pretty", "updated_at", "run_column"]
    actions = ["reset"]

    def has_delete_permission(self, request, obj=None):
        return False  # a reset empties the cursor instead, with its audit entry

    @admin.display(description="cursor")
    def cursor_short(self, obj: Checkpoint) -> str:
        return cursor_summary(obj.source, obj.cursor)

    @admin.display(description="current cursor")
    def cursor_pretty(self, obj: Checkpoint) -> SafeString:
        return pretty_json(obj.cursor)

    @admin.display(description="written by run", ordering="run__started_at")
    def run_column(self, obj: Checkpoint) -> SafeString | str:
        return run_link(obj.run)

    def save_model(self, request, obj, form, change):
        # The service writes; the form was a proposal. A run may have started since the form
        # was checked: then nothing is written, logged, or reported as changed.
        try:
            obj.cursor_before = checkpoint_rewind(
                source=obj.source, cursor=form.cleaned_data["cursor"]
            )
        except ApplicationError as exc:
            obj.refused = exc.message
        obj.refresh_from_db()

    def log_change(self, request, obj, message):
        if getattr(obj, "refused", None):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request, obj):
        if getattr(obj, "refused", None):
            self.message_user(request, obj.refused, messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def construct_change_message(self, request, form, formsets, add=False):
        before = getattr(form.instance, "cursor_before", form.initial.get("cursor"))
        after = form.instance.cursor
        return f"Rewound the cursor from {compact_json(before)} to {compact_json(after)}"

    @admin.action(description="Reset (the next run starts from scratch)", permissions=["change"])
    def reset(self, request, queryset):
        checkpoints = list(queryset.order_by("source"))
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Reset these checkpoints?",
                "opts": self.model._meta,
                "checkpoints": [(c, cursor_summary(c.source, c.cursor, 300)) for c in checkpoints],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "action": "reset",
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(
                request, "admin/etl/checkpoint/reset_confirmation.html", context
            )
        done = []
        for checkpoint in checkpoints:
            try:
                before = checkpoint_reset(source=checkpoint.source)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            self.log_change(
                request, checkpoint, f"Reset the cursor from {compact_json(before)} to {{}}"
            )
            done.append(checkpoint.source)
        if done:
            self.message_user(
                request, f"Reset {', '.join(done)}: the next run of each starts from scratch."
            )
        return None
