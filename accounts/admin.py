from django.contrib import admin

from .models import Connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    """Status, scopes and expiry only: the encrypted tokens are never shown."""

    list_display = [
        "cinc_username",
        "cinc_agent_name",
        "broker",
        "status",
        "scopes",
        "token_expires_at",
        "last_synced_at",
        "last_sync_attempt_at",
    ]
    list_filter = ["status", "connected_at"]
    list_select_related = ["broker"]
    search_fields = [
        "cinc_username",
        "cinc_agent_name",
        "cinc_agent_id",
        "broker__username",
    ]
    exclude = ["access_token_ciphertext", "refresh_token_ciphertext"]
    readonly_fields = [
        "uuid",
        "broker",
        "api_url",
        "cinc_agent_id",
        "cinc_username",
        "cinc_agent_name",
        "cinc_roles",
        "scopes",
        "requested_scopes",
        "token_expires_at",
        "token_refreshed_at",
        "last_error",
        "last_error_at",
        "connected_at",
        "disconnected_at",
        "last_sync_attempt_at",
        "last_synced_at",
    ]

    def has_add_permission(self, request):
        # Connections are made by the OAuth flow only.
        return False
