"""The mirror compared with the sandbox's full dump.

``compare(connection, leads=, agents=)`` takes the sandbox's current records
(``control.leads("demo")``, ``control.agents("demo")``) and answers, for the
connection's mirror:

- ``lost``: records CINC has that the mirror lacks or shows as removed;
- ``doubled``: extra rows for one CINC id (the database forbids them; still
  counted, from the rows themselves);
- ``not_removed``: mirrored records CINC no longer has that are not marked
  removed;
- ``stale``: live records whose stored copy, hash or columns differ from
  CINC's;
- ``removed_ok``: records CINC no longer has, marked removed.
"""

from dataclasses import dataclass, field

# Columns a broker sees, checked one by one against the parsed record (the
# raw record and its hash are compared whole).
LEAD_COLUMNS = (
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("email", "email"),
    ("status", "status"),
    ("source", "source"),
    ("city", "city"),
    ("zip_code", "zip"),
    ("primary_agent_cinc_id", "primary_agent_id"),
    ("listing_agent_cinc_id", "listing_agent_id"),
    ("partner_cinc_id", "partner_agent_id"),
)


@dataclass
class Comparison:
    upstream: int = 0
    mirrored: int = 0
    lost: list = field(default_factory=list)
    doubled: int = 0
    not_removed: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    removed_ok: int = 0

    @property
    def exact(self):
        return not (self.lost or self.doubled or self.not_removed or self.stale)

    def summary(self):
        return (
            f"{self.upstream} upstream, {self.mirrored} live in the mirror, "
            f"{len(self.lost)} lost, {self.doubled} doubled, "
            f"{len(self.not_removed)} removed upstream but not marked, "
            f"{len(self.stale)} with other values, {self.removed_ok} marked removed"
        )

    def add(self, other):
        self.upstream += other.upstream
        self.mirrored += other.mirrored
        self.lost += other.lost
        self.doubled += other.doubled
        self.not_removed += other.not_removed
        self.stale += other.stale
        self.removed_ok += other.removed_ok


def _rows(model, connection):
    fields = ["cinc_id", "raw", "content_hash", "removed_at"]
    if model.__name__ == "Lead":
        fields += [column for column, _ in LEAD_COLUMNS]
    return list(model.objects.filter(connection=connection).values(*fields))


def _compare(model, connection, records, parse):
    from leads.sync import content_hash

    result = Comparison(upstream=len(records))
    rows = _rows(model, connection)
    by_id = {}
    for row in rows:
        if row["cinc_id"] in by_id:
            result.doubled += 1
        by_id[row["cinc_id"]] = row
    upstream = {str(record["id"]): record for record in records}
    result.mirrored = sum(1 for row in by_id.values() if row["removed_at"] is None)

    for cinc_id, record in upstream.items():
        row = by_id.get(cinc_id)
        if row is None or row["removed_at"] is not None:
            result.lost.append(cinc_id)
        elif row["raw"] != record or row["content_hash"] != content_hash(record):
            result.stale.append(cinc_id)
        elif parse is not None and _columns_differ(row, parse(record)):
            result.stale.append(cinc_id)
    for cinc_id, row in by_id.items():
        if cinc_id in upstream:
            continue
        if row["removed_at"] is None:
            result.not_removed.append(cinc_id)
        else:
            result.removed_ok += 1
    return result


def _columns_differ(row, parsed):
    for column, attribute in LEAD_COLUMNS:
        if (row[column] or "") != (getattr(parsed, attribute) or ""):
            return True
    return False


def compare(connection, *, leads, agents=None):
    """Compare the mirror of ``connection`` with CINC's records."""
    from cinc.records import parse_lead
    from leads.models import Agent, Lead

    result = _compare(Lead, connection, leads, parse_lead)
    if agents is not None:
        result.add(_compare(Agent, connection, agents, None))
    return result


def removed_ids(connection):
    """CINC ids of the leads the mirror shows as removed."""
    from leads.models import Lead

    rows = Lead.objects.filter(connection=connection, removed_at__isnull=False)
    return set(rows.values_list("cinc_id", flat=True))
