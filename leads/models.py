"""The local mirror of a CINC site: agents, leads, their history, sync runs.

Every row belongs to one ``accounts.Connection``; every read is scoped to the
signed-in broker's connections (see ``leads.selectors``). The typed columns
hold what pages filter, sort and show; ``raw`` keeps the record as CINC sent
it, so fields the product does not use yet are not lost.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Connection


class MirroredRecord(models.Model):
    """Columns shared by mirrored agents and leads."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    cinc_id = models.CharField("CINC id", max_length=100)
    registered_at = models.DateTimeField(null=True, blank=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.CharField(max_length=254, blank=True)
    cell_phone = models.CharField(max_length=40, blank=True)
    home_phone = models.CharField(max_length=40, blank=True)
    work_phone = models.CharField(max_length=40, blank=True)
    office_phone = models.CharField(max_length=40, blank=True)
    street = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=120, blank=True)
    state = models.CharField(max_length=80, blank=True)
    zip_code = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=40, blank=True)
    raw = models.JSONField(default=dict, help_text="The record as CINC sent it.")
    content_hash = models.CharField(
        max_length=64, help_text="Hash of the raw record, to skip unchanged ones."
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    changed_at = models.DateTimeField(
        default=timezone.now, help_text="When the mirror last saw this record change."
    )
    removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a complete sync no longer found it."
    )

    class Meta:
        abstract = True

    @property
    def full_name(self):
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def phones(self):
        return {
            label: number
            for label, number in (
                ("Cell", self.cell_phone),
                ("Home", self.home_phone),
                ("Work", self.work_phone),
                ("Office", self.office_phone),
            )
            if number
        }


class Agent(MirroredRecord):
    # No index of its own: the unique (connection, cinc_id) constraint and
    # every index below start with the connection.
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="agents", db_index=False
    )

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "cinc_id"], name="unique_agent_per_connection"
            )
        ]
        indexes = [
            models.Index(fields=["connection", "status"]),
            models.Index(fields=["connection", "last_name", "first_name"]),
        ]

    def __str__(self):
        return self.full_name or self.email or self.cinc_id


class Lead(MirroredRecord):
    # No index of its own: the unique (connection, cinc_id) constraint and
    # every list index start with the connection, and each index is one
    # more insert for every new lead.
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="leads", db_index=False
    )
    source = models.CharField(max_length=120, blank=True)
    is_buyer = models.BooleanField(default=False)
    is_seller = models.BooleanField(default=False)
    buyer_median_price = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True
    )
    buyer_average_price = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True
    )
    buyer_favorite_city = models.CharField(max_length=120, blank=True)
    buyer_timeline = models.CharField(max_length=120, blank=True)
    seller_timeline = models.CharField(max_length=120, blank=True)
    # The CINC ids as sent, and the mirrored agents they resolve to (null when
    # the agent is not, or not yet, in the mirror).
    primary_agent_cinc_id = models.CharField(max_length=100, blank=True)
    listing_agent_cinc_id = models.CharField(max_length=100, blank=True)
    partner_cinc_id = models.CharField(max_length=100, blank=True)
    primary_agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="primary_leads",
    )
    listing_agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="listing_leads",
    )
    partner = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="partner_leads",
    )
    search_text = models.TextField(
        blank=True,
        help_text="Lower-case name, email and phone digits, for the search box.",
    )

    class Meta:
        ordering = ["-registered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "cinc_id"], name="unique_lead_per_connection"
            )
        ]
        # One index per sort of the leads list, in the list's order with the
        # id as tie-breaker, so a page is read in index order without a
        # sort; ``removed_at`` last, so the hidden removed leads are skipped
        # (and a deep page's rows counted off) on the index alone. The
        # status and source indexes also give the filter menus their values.
        # ``lead_facets`` answers the dashboard's counts and the count of a
        # list filtered by status, source, buyer or seller without reading
        # the leads. On PostgreSQL the search has a trigram index too (see
        # the 0002 migration).
        indexes = [
            models.Index(
                fields=["connection", "registered_at", "id", "removed_at"],
                name="lead_by_registered",
            ),
            models.Index(
                fields=["connection", "last_name", "first_name", "id", "removed_at"],
                name="lead_by_name",
            ),
            models.Index(
                fields=["connection", "email", "id", "removed_at"], name="lead_by_email"
            ),
            models.Index(
                fields=["connection", "status", "id", "removed_at"],
                name="lead_by_status",
            ),
            models.Index(
                fields=["connection", "source", "id", "removed_at"],
                name="lead_by_source",
            ),
            models.Index(
                fields=["connection", "city", "id", "removed_at"], name="lead_by_city"
            ),
            models.Index(
                fields=["connection", "state", "id", "removed_at"], name="lead_by_state"
            ),
            models.Index(
                fields=[
                    "connection",
                    "removed_at",
                    "status",
                    "source",
                    "is_buyer",
                    "is_seller",
                ],
                name="lead_facets",
            ),
        ]

    def __str__(self):
        return self.full_name or self.email or self.cinc_id


class LeadChange(models.Model):
    """A change to a lead's status or assigned agents, seen by a sync.

    CINC only gives the present; these rows let a broker see how a lead
    moved.
    """

    class Field(models.TextChoices):
        STATUS = "status", "Status"
        PRIMARY_AGENT = "primary_agent", "Primary agent"
        LISTING_AGENT = "listing_agent", "Listing agent"
        PARTNER = "partner", "Partner"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="changes")
    field = models.CharField(max_length=20, choices=Field.choices)
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    sync_run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["lead", "changed_at"])]

    def __str__(self):
        return f"{self.get_field_display()}: {self.old_value or '—'} → {self.new_value or '—'}"


class SyncRun(models.Model):
    """One sync of one connection, with what it did, for pages and the admin."""

    class Kind(models.TextChoices):
        FULL = "full", "Agents and leads"
        LEAD = "lead", "One lead"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"

    class Phase(models.TextChoices):
        ME = "me", "Checking access"
        AGENTS = "agents", "Agents"
        LEADS = "leads", "Leads"
        FINISHING = "finishing", "Finishing"
        DONE = "done", "Done"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="sync_runs"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FULL)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.ME)
    next_offset = models.PositiveIntegerField(
        default=0, help_text="Where the walk of the current phase resumes."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life, to close stale runs."
    )
    waiting_until = models.DateTimeField(
        null=True, blank=True, help_text="A rate-limit wait is under way until then."
    )
    pages = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    records_seen = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    record_errors = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(
        default=0, help_text="429 answers met (none should be the portal's fault)."
    )
    retries = models.PositiveIntegerField(default=0)
    expected_records = models.PositiveIntegerField(
        default=0, help_text="Estimate for the progress bar (the API gives no totals)."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["connection", "status", "created_at"])]

    def __str__(self):
        return f"Sync {self.get_status_display().lower()} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def is_active(self):
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def progress_percent(self):
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.expected_records:
            return 0
        return min(99, int(100 * self.records_seen / self.expected_records))


class SyncRunPage(models.Model):
    """The CINC ids one page of a walk returned.

    Kept per page, in the page's own transaction, so a run that resumes after
    a reschedule or a crash still knows everything its walk has seen, and
    records no longer found can be marked removed when the walk completes.
    """

    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="seen_pages"
    )
    phase = models.CharField(max_length=10, choices=SyncRun.Phase.choices)
    offset = models.PositiveIntegerField()
    cinc_ids = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "phase", "offset"], name="unique_page_per_run"
            )
        ]


class LeadWrite(models.Model):
    """Audit log of every write the portal sent to CINC for a broker."""

    class Outcome(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DUPLICATE = "duplicate", "Refused: email exists"
        INVALID = "invalid", "Refused: invalid fields"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "No answer (checked by email)"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="lead_writes"
    )
    broker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    email = models.CharField(max_length=254)
    payload = models.JSONField(help_text="What was sent to CINC.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True, help_text="CINC's answer.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="writes"
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.email}: {self.get_outcome_display()}"
