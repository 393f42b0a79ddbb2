"""The admin of the mirror: read-only views for staff.

The mirror is CINC's data: it changes through syncs and lead creation, never
by hand, so nothing here can be added or edited (deleting stays possible for
clean-ups). Raw records are shown as pretty JSON; a connection appears only
by its name and status, never with its tokens.
"""

from django.contrib import admin
from django.db import transaction
from django.db.models import F
from django.utils.html import format_html

from accounts.models import Connection

from .models import Agent, Lead, LeadChange, LeadWrite, SyncRun, SyncRunPage
from .sync import lock_mirror, mirror_changed
from .templatetags.portal import duration, pretty_json


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field shown, none editable, no "add"."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MirrorAdmin(ReadOnlyAdmin):
    """Deleting mirrored rows here moves their connections' mirror version,
    as a sync's writes do, so nothing cached from the mirror outlives them."""

    def delete_model(self, request, obj):
        with transaction.atomic():
            lock_mirror(obj.connection)
            super().delete_model(request, obj)
            mirror_changed(obj.connection)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            connection_ids = set(queryset.values_list("connection_id", flat=True))
            connections = list(
                Connection.objects.filter(pk__in=connection_ids).order_by("pk")
            )
            for connection in connections:
                lock_mirror(connection)
            super().delete_queryset(request, queryset)
            for connection in connections:
                mirror_changed(connection)


def _pretty(value):
    return format_html('<pre class="readonly">{}</pre>', pretty_json(value))


@admin.register(Agent)
class AgentAdmin(MirrorAdmin):
    list_display = [
        "__str__",
        "email",
        "status",
        "connection",
        "registered_at",
        "removed_at",
    ]
    list_filter = ["status", ("removed_at", admin.EmptyFieldListFilter), "connection"]
    search_fields = ["first_name", "last_name", "email", "cinc_id"]
    list_select_related = ["connection"]
    exclude = ["raw"]
    readonly_fields = ["raw_record"]
    show_full_result_count = False

    @admin.display(description="Record as received")
    def raw_record(self, obj):
        return _pretty(obj.raw)


class LeadChangeInline(admin.TabularInline):
    model = LeadChange
    extra = 0
    can_delete = False
    fields = ["changed_at", "field", "old_value", "new_value", "sync_run"]
    readonly_fields = fields
    ordering = ["-changed_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Lead)
class LeadAdmin(MirrorAdmin):
    list_display = [
        "__str__",
        "email",
        "status",
        "source",
        "city",
        "state",
        "primary_agent",
        "registered_at",
        "connection",
        "removed_at",
    ]
    list_filter = [
        "status",
        "is_buyer",
        "is_seller",
        ("removed_at", admin.EmptyFieldListFilter),
        "registered_at",
        "connection",
    ]
    search_fields = ["first_name", "last_name", "email", "cinc_id", "cell_phone"]
    list_select_related = ["connection", "primary_agent"]
    date_hierarchy = "registered_at"
    exclude = ["raw", "search_text"]
    readonly_fields = ["raw_record"]
    inlines = [LeadChangeInline]
    show_full_result_count = False

    @admin.display(description="Record as received")
    def raw_record(self, obj):
        return _pretty(obj.raw)


@admin.register(LeadChange)
class LeadChangeAdmin(ReadOnlyAdmin):
    list_display = ["lead", "field", "old_value", "new_value", "changed_at"]
    list_filter = ["field", "changed_at"]
    search_fields = ["lead__email", "lead__cinc_id", "old_value", "new_value"]
    list_select_related = ["lead"]
    raw_id_fields = ["lead", "sync_run"]


class SyncRunPageInline(admin.TabularInline):
    model = SyncRunPage
    extra = 0
    can_delete = False
    fields = ["phase", "offset", "id_count"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="ids")
    def id_count(self, obj):
        return len(obj.cinc_ids or [])


@admin.register(SyncRunPage)
class SyncRunPageAdmin(ReadOnlyAdmin):
    list_display = ["run", "phase", "offset", "id_count"]
    list_filter = ["phase"]
    list_select_related = ["run"]
    raw_id_fields = ["run"]
    search_fields = ["run__uuid"]

    @admin.display(description="ids")
    def id_count(self, obj):
        return len(obj.cinc_ids or [])


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "connection",
        "kind",
        "status",
        "phase",
        "took",
        "pages",
        "records_seen",
        "created",
        "updated",
        "removed",
        "record_errors",
        "rate_limited",
        "retries",
        "short_error",
    ]
    list_filter = ["status", "kind", "phase", "created_at", "connection"]
    search_fields = ["error", "uuid"]
    list_select_related = ["connection"]
    date_hierarchy = "created_at"
    inlines = [SyncRunPageInline]
    show_full_result_count = False

    @admin.display(description="duration", ordering=F("finished_at") - F("started_at"))
    def took(self, obj):
        return duration(obj) or "—"

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error


@admin.register(LeadWrite)
class LeadWriteAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "email",
        "outcome",
        "status_code",
        "broker",
        "connection",
        "lead",
    ]
    list_filter = ["outcome", "status_code", "created_at", "connection"]
    search_fields = ["email", "lead__cinc_id", "broker__username"]
    list_select_related = ["connection", "broker", "lead"]
    date_hierarchy = "created_at"
    exclude = ["payload", "response"]
    readonly_fields = ["sent", "answer"]

    @admin.display(description="Sent to CINC")
    def sent(self, obj):
        return _pretty(obj.payload)

    @admin.display(description="CINC's answer")
    def answer(self, obj):
        return _pretty(obj.response)
