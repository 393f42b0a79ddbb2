import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import crypto

# What each scope enables in the portal, for the dashboard's "this connection
# cannot..." notes.
SCOPE_FEATURES = {
    "api:read": "mirror agents and leads",
    "api:create": "create leads in CINC",
}


class Connection(models.Model):
    """One CINC site connected by one broker, with the OAuth tokens for it.

    The tokens are stored encrypted; read them through ``access_token`` and
    ``refresh_token`` and never put them in a message, a log line or a page.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        DISCONNECTED = "disconnected", "Disconnected"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    broker = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="cinc_connections",
    )
    api_url = models.URLField(max_length=300)
    cinc_agent_id = models.CharField("CINC agent id", max_length=100)
    cinc_username = models.CharField("CINC username", max_length=254)
    cinc_agent_name = models.CharField("CINC agent name", max_length=200, blank=True)
    cinc_roles = models.JSONField(default=list, blank=True)
    scopes = models.JSONField(default=list, blank=True, help_text="Scopes granted.")
    requested_scopes = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    access_token_ciphertext = models.TextField(blank=True, editable=False)
    refresh_token_ciphertext = models.TextField(blank=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    token_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    last_sync_attempt_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="End of the last complete sync."
    )
    # Bumped in the same transaction as every write to this connection's
    # mirrored agents and leads, so anything computed from the mirror (the
    # dashboard's counts) can be cached under it.
    mirror_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["broker", "api_url", "cinc_agent_id"],
                name="unique_connection_per_broker_site_agent",
            )
        ]

    def __str__(self):
        return f"{self.cinc_agent_name or self.cinc_username} ({self.get_status_display()})"

    def save(self, *args, **kwargs):
        # mirror_version only moves by ``mirror_version + 1`` in the database
        # (leads.sync.mirror_changed): saving a copy loaded before a sync
        # wrote must not put its older version back.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name != "mirror_version"
            ]
        super().save(*args, **kwargs)

    @property
    def access_token(self):
        return crypto.decrypt(self.access_token_ciphertext)

    @access_token.setter
    def access_token(self, value):
        self.access_token_ciphertext = crypto.encrypt(value)

    @property
    def refresh_token(self):
        return crypto.decrypt(self.refresh_token_ciphertext)

    @refresh_token.setter
    def refresh_token(self, value):
        self.refresh_token_ciphertext = crypto.encrypt(value)

    @property
    def is_active(self):
        return self.status == self.Status.ACTIVE

    @property
    def can_create_leads(self):
        return self.is_active and "api:create" in self.scopes

    @property
    def missing_scopes(self):
        return [scope for scope in self.requested_scopes if scope not in self.scopes]

    @property
    def disabled_features(self):
        """What the portal cannot do for this connection, scope by scope."""
        return [
            SCOPE_FEATURES.get(scope, scope)
            for scope in self.missing_scopes
            if scope in SCOPE_FEATURES
        ]

    def forget_tokens(self):
        self.access_token_ciphertext = ""
        self.refresh_token_ciphertext = ""
        self.token_expires_at = None
