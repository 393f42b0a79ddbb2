"""The mirror's write path: what a page of records writes, what it skips,
how a refused row is isolated, and the connection's mirror version."""

import hashlib
import uuid
from datetime import datetime

import pytest
from django import db
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import Connection
from leads import sync
from leads.models import Lead, LeadChange

pytestmark = pytest.mark.django_db


def lead(number, **info):
    info.setdefault("status", "unworked")
    info.setdefault(
        "contact", {"first_name": f"First{number}", "email": f"l{number}@ex.test"}
    )
    return {
        "id": f"LEAD_W{number}",
        "registered_date": "2024-03-01T10:00:00Z",
        "info": info,
    }


def version(connection):
    return Connection.objects.get(pk=connection.pk).mirror_version


def test_unchanged_records_are_not_parsed_again(connection, monkeypatch):
    records = [lead(n) for n in range(5)]
    sync.upsert_leads(connection=connection, records=records)
    parsed = []
    real_parse = sync.parse_lead

    def counting_parse(raw):
        parsed.append(raw["id"])
        return real_parse(raw)

    monkeypatch.setattr(sync, "parse_lead", counting_parse)
    changed = lead(3, status="inprogress")

    counts = sync.upsert_leads(connection=connection, records=[*records[:3], changed])

    assert (counts.unchanged, counts.updated, counts.history) == (3, 1, 1)
    assert parsed == ["LEAD_W3"]
    assert Lead.objects.get(cinc_id="LEAD_W3").status == "inprogress"
    change = LeadChange.objects.get()
    assert (change.old_value, change.new_value) == ("unworked", "inprogress")


def test_written_rows_read_back_as_sent(connection):
    record = lead(
        1,
        is_buyer=True,
        buyer={"median_price": "350000.5", "timeline": "3 months"},
        contact={"first_name": "Zoë", "email": "zoe@ex.test", "extra": [1, {"a": 2}]},
    )

    sync.upsert_leads(connection=connection, records=[record])

    row = Lead.objects.get(cinc_id="LEAD_W1")
    assert row.raw == record
    assert row.content_hash == sync.content_hash(record)
    assert row.registered_at.isoformat() == "2024-03-01T10:00:00+00:00"
    assert str(row.buyer_median_price) == "350000.50"
    assert (row.first_name, row.is_buyer, row.buyer_timeline) == (
        "Zoë",
        True,
        "3 months",
    )
    assert row.first_seen_at == row.changed_at
    assert isinstance(row.uuid, uuid.UUID)


def test_a_row_the_database_refuses_does_not_lose_the_others(connection, monkeypatch):
    taken = Lead.objects.create(
        connection=connection, cinc_id="LEAD_OLD", raw={}, content_hash="x"
    ).uuid
    keys = iter([uuid.uuid4(), taken, uuid.uuid4()])

    class Keys:
        @staticmethod
        def uuid4():
            return next(keys)

    monkeypatch.setattr(sync, "uuid", Keys)

    counts = sync.upsert_leads(
        connection=connection, records=[lead(1), lead(2), lead(3)]
    )

    assert counts.created == 2
    assert [error.record_id for error in counts.errors] == ["LEAD_W2"]
    assert "the database refused it (IntegrityError)" in str(counts.errors[0])
    stored = set(Lead.objects.values_list("cinc_id", flat=True))
    assert stored == {"LEAD_OLD", "LEAD_W1", "LEAD_W3"}


def test_without_a_savepoint_a_refused_row_raises_for_the_caller_to_roll_back(
    connection, monkeypatch
):
    taken = Lead.objects.create(
        connection=connection, cinc_id="LEAD_OLD", raw={}, content_hash="x"
    ).uuid
    keys = iter([uuid.uuid4(), taken])

    class Keys:
        @staticmethod
        def uuid4():
            return next(keys)

    monkeypatch.setattr(sync, "uuid", Keys)

    with pytest.raises(db.IntegrityError), transaction.atomic():
        sync.upsert_leads(
            connection=connection, records=[lead(1), lead(2)], savepoint=False
        )

    assert set(Lead.objects.values_list("cinc_id", flat=True)) == {"LEAD_OLD"}


def test_a_page_inserts_new_leads_plainly_and_upserts_stored_ones(
    connection, monkeypatch
):
    sync.upsert_leads(connection=connection, records=[lead(1), lead(2)])
    copied = []
    real_copy = sync._copy

    def spy(cursor, table, columns, rows):
        copied.append((table, len(rows)))
        real_copy(cursor, table, columns, rows)

    monkeypatch.setattr(sync, "_copy", spy)

    with CaptureQueriesContext(db.connection) as queries:
        counts = sync.upsert_leads(
            connection=connection,
            records=[lead(1, status="inprogress"), lead(2), lead(3), lead(4)],
        )

    assert (counts.created, counts.updated, counts.unchanged) == (2, 1, 1)
    # executemany is logged as "<n> times: <statement>".
    inserts = [q["sql"] for q in queries if 'INSERT INTO "leads_lead" ' in q["sql"]]
    assert sum("ON CONFLICT" in sql for sql in inserts) == 1
    if db.connection.vendor == "postgresql":
        # New rows are COPied into the table itself, the changed one
        # through the temporary table.
        assert copied == [('"leads_lead"', 2), ('"leads_lead_page"', 1)]
        assert len(inserts) == 1
    else:
        assert sum("ON CONFLICT" not in sql for sql in inserts) == 1
    stored = dict(Lead.objects.values_list("cinc_id", "status"))
    assert stored == {
        "LEAD_W1": "inprogress",
        "LEAD_W2": "unworked",
        "LEAD_W3": "unworked",
        "LEAD_W4": "unworked",
    }


def test_a_lead_stored_meanwhile_by_another_writer_is_updated_not_doubled(
    connection, monkeypatch
):
    # Another process stores LEAD_W2 after this page read the stored rows:
    # the page's plain INSERT fails on it, and the rows are written again
    # one by one with the upsert.
    sync.upsert_leads(connection=connection, records=[lead(2)])
    real_existing = sync._existing

    def read_before_the_other_writer(model, connection_, ids, fields):
        rows = real_existing(model, connection_, ids, fields)
        rows.pop("LEAD_W2", None)
        return rows

    monkeypatch.setattr(sync, "_existing", read_before_the_other_writer)

    counts = sync.upsert_leads(
        connection=connection,
        records=[lead(1), lead(2, status="inprogress"), lead(3)],
    )

    assert counts.record_errors == 0
    assert counts.created + counts.updated == 3
    stored = dict(Lead.objects.values_list("cinc_id", "status"))
    assert stored == {
        "LEAD_W1": "unworked",
        "LEAD_W2": "inprogress",
        "LEAD_W3": "unworked",
    }


def test_an_id_no_database_stores_is_an_unreadable_record_not_a_failed_page(
    connection,
):
    records = [lead(1), {**lead(2), "id": "LEAD_\x00NUL"}, lead(3)]
    records.append({**lead(4), "id": "LEAD_\ud800"})

    counts = sync.upsert_leads(connection=connection, records=records)

    assert (counts.created, counts.record_errors) == (2, 2)
    assert all("no database stores" in str(error) for error in counts.errors)
    stored = set(Lead.objects.values_list("cinc_id", flat=True))
    assert stored == {"LEAD_W1", "LEAD_W3"}


def test_mirror_version_moves_with_every_write_and_only_then(connection):
    start = version(connection)

    sync.upsert_leads(connection=connection, records=[lead(1), lead(2)])
    after_create = version(connection)
    sync.upsert_leads(connection=connection, records=[lead(1), lead(2)])
    after_unchanged = version(connection)
    sync.upsert_leads(connection=connection, records=[lead(1, status="closed")])
    after_change = version(connection)
    sync.upsert_agents(connection=connection, records=[{"id": "AGENT_W1", "info": {}}])
    after_agent = version(connection)

    assert start < after_create == after_unchanged < after_change < after_agent


def test_a_sync_that_marks_removals_moves_the_mirror_version(connection, sandbox):
    sync.sync_connection(connection_id=connection.pk)
    before = version(connection)
    unchanged = sync.sync_connection(connection_id=connection.pk)
    assert version(connection) == before
    assert unchanged.run.removed == 0
    gone = sandbox.control.leads()[0]["id"]
    sandbox.control.delete_lead("demo", gone)

    outcome = sync.sync_connection(connection_id=connection.pk)

    outcome.run.refresh_from_db()
    assert outcome.run.removed == 1
    assert Lead.objects.get(cinc_id=gone).removed_at is not None
    assert version(connection) > before


def test_postgresql_statistics_follow_a_growing_mirror(connection, monkeypatch):
    from django.db import connection as db

    if db.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    monkeypatch.setattr(sync, "_WRITTEN_SINCE_STATS", {})
    monkeypatch.setattr(sync, "STATS_MIN_ROWS", 100)

    def table_size():
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE relname = 'leads_lead'"
            )
            return cursor.fetchone()[0]

    # ANALYZE's figures outlive a test's rollback: start from what is there.
    before = table_size()
    sync.upsert_leads(connection=connection, records=[lead(n) for n in range(99)])
    assert table_size() == before

    sync.upsert_leads(connection=connection, records=[lead(n) for n in range(99, 150)])
    assert table_size() == Lead.objects.count() == 150
    # The next refresh waits until as many rows again were written.
    sync.upsert_leads(connection=connection, records=[lead(n) for n in range(150, 250)])
    assert table_size() == 150
    sync.upsert_leads(connection=connection, records=[lead(n) for n in range(250, 300)])
    assert table_size() == 300


def test_numbers_json_cannot_hold_are_stored_as_text_and_the_rest_kept(connection):
    odd = lead(1, score=float("nan"), ratio=[float("inf"), -float("inf")])
    huge = lead(2, weight=1e400)  # how Python's JSON reader reads 1e400
    bad_price = lead(3, buyer={"median_price": float("nan")})

    counts = sync.upsert_leads(connection=connection, records=[odd, huge, bad_price])

    assert (counts.created, counts.record_errors) == (2, 1)
    assert "median_price is not a finite number" in str(counts.errors[0])
    stored = Lead.objects.get(cinc_id="LEAD_W1")
    assert stored.raw["info"]["score"] == "NaN"
    assert stored.raw["info"]["ratio"] == ["Infinity", "-Infinity"]
    assert stored.content_hash == sync.content_hash(odd)
    assert Lead.objects.get(cinc_id="LEAD_W2").raw["info"]["weight"] == "Infinity"
    again = sync.upsert_leads(connection=connection, records=[odd, huge])
    assert again.unchanged == 2


def test_saving_an_old_copy_of_a_connection_keeps_the_mirror_version(connection):
    old_copy = Connection.objects.get(pk=connection.pk)
    sync.upsert_leads(connection=connection, records=[lead(1)])
    written = version(connection)

    old_copy.last_error = "saved from a copy loaded before the write"
    old_copy.save()

    assert version(connection) == written > old_copy.mirror_version
    assert Connection.objects.get(pk=connection.pk).last_error.startswith("saved")


def test_a_failed_page_keeps_the_requests_already_made(connection):
    run = sync.SyncRun(connection=connection, requests=3, retries=1, pages=2)
    walk = sync._Sync(connection, run, progress=None)
    snapshot, notes = walk._snapshot(), []
    run.requests, run.retries, run.pages = 5, 2, 3

    walk._restore(snapshot, notes)

    assert (run.requests, run.retries, run.pages) == (5, 2, 2)


def test_old_finished_runs_are_deleted_but_the_newest_full_sync_stays(
    connection, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from leads.models import SyncRun, SyncRunPage

    settings.CINC_SYNC_RUNS_KEPT_DAYS = 30
    long_ago = timezone.now() - timedelta(days=31)

    def run(kind, status, when):
        made = SyncRun.objects.create(connection=connection, kind=kind, status=status)
        SyncRun.objects.filter(pk=made.pk).update(created_at=when)
        return made

    oldest = run("full", "succeeded", long_ago - timedelta(days=5))
    last_full = run("full", "failed", long_ago)
    old_refresh = run("lead", "succeeded", long_ago)
    stuck = run("full", "queued", long_ago - timedelta(days=9))
    recent = run("lead", "succeeded", timezone.now())
    SyncRunPage.objects.create(run=oldest, phase="leads", offset=0, cinc_ids=["A"])
    sync.upsert_leads(connection=connection, records=[lead(1)], sync_run=oldest)
    sync.upsert_leads(
        connection=connection, records=[lead(1, status="closed")], sync_run=oldest
    )

    deleted = sync.sync_runs_prune()

    assert deleted == 2
    left = set(SyncRun.objects.values_list("pk", flat=True))
    assert left == {last_full.pk, stuck.pk, recent.pk}
    assert old_refresh.pk not in left
    assert not SyncRunPage.objects.exists()
    assert LeadChange.objects.get().sync_run is None  # the history stays


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10 minutes"), (60, "1 minute"), (45, "45 seconds"), (1, "1 second")],
)
def test_stale_runs_say_how_long_they_were_silent_in_words(seconds, text):
    assert sync._duration(seconds) == text


CANONICAL_RECORDS = [
    lead(1),
    lead(2, contact={"first_name": "Zoë 日本 😀", "email": "a\u2028b@ex.test"}),
    lead(3, note="".join(chr(code) for code in range(1, 0x30)) + '"\\/\x7f'),
    lead(4, buyer={"median_price": 350000.5, "average_price": 12}, is_buyer=True),
    lead(5, nested=[1, "x", {"b": True, "a": False}, []], big=2**63 - 1),
    lead(6, keys={"b": 1, "a": 2, "é": 3, "z": 4, "😀": 5, "\uffff": 6}),
    lead(7, prices=[0.1, 1e16, -0.0, 5e-324, 123456789.123]),
]
# Records the fast encoder leaves to json.dumps: a null (NaN and Infinity
# are written as null by orjson), integers beyond 64 bits, a lone
# surrogate, a NUL, a non-string key, a datetime.
SLOW_RECORDS = [
    lead(10, source=None),
    lead(11, score=float("nan")),
    lead(12, weight=2**70),
    lead(13, note="\ud800 alone"),
    lead(14, note="nul\x00here"),
    {"id": "LEAD_W15", "info": {1: "one"}},
    lead(16, when=datetime(2024, 1, 2, 3, 4, 5)),
]


@pytest.mark.parametrize("record", CANONICAL_RECORDS + SLOW_RECORDS)
def test_the_fast_canonical_json_is_byte_for_byte_json_dumps(record):
    fast, slow = sync._hashed(record), sync._hashed_slowly(record)

    assert (fast.digest, fast.text, fast.clean) == (slow.digest, slow.text, slow.clean)
    assert fast.raw == slow.raw
    assert fast.sent is record


def test_the_hash_covers_the_columns_version_and_the_sorted_record():
    record = lead(1, b=1, a=2)
    canonical = sync._dumps(record)

    assert canonical.index('"a":2') < canonical.index('"b":1')
    expected = hashlib.sha256(f"[{sync.COLUMNS_VERSION},{canonical}]".encode())
    assert sync.content_hash(record) == expected.hexdigest()


def test_a_float_under_1e_4_is_the_one_known_difference():
    # Such a record, hashed before orjson was used, is rewritten once.
    record = lead(1, tiny=1e-05)

    assert '"tiny":1e-05' in sync._hashed_slowly(record).text
    assert '"tiny":0.00001' in sync._hashed(record).text
    assert sync._hashed(record).digest == sync._hashed(record).digest


def _pragma(name):
    with db.connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


@pytest.mark.skipif(db.connection.vendor != "sqlite", reason="SQLite's checkpoints")
def test_a_walk_checkpoints_sqlite_from_a_helper_thread_too(connection):
    with sync.BackgroundCheckpoints(interval=0.05) as aside:
        sync.upsert_leads(connection=connection, records=[lead(n) for n in range(50)])
        assert aside.thread.is_alive()
        # The commits keep their own checkpoints, so the log starts over.
        assert _pragma("wal_autocheckpoint") == 10_000
        aside.stop.wait(0.3)

    assert not aside.thread.is_alive()
    assert aside.checkpoints >= 2
    assert Lead.objects.filter(connection=connection).count() == 50


@pytest.mark.skipif(db.connection.vendor != "sqlite", reason="SQLite's checkpoints")
def test_the_checkpoint_thread_ends_when_the_walk_fails(connection):
    with pytest.raises(RuntimeError), sync.BackgroundCheckpoints(interval=10) as aside:
        raise RuntimeError("a page failed")

    assert not aside.thread.is_alive()
    assert aside.checkpoints == 0


def test_postgresql_gets_no_checkpoint_thread():
    if db.connection.vendor == "sqlite":
        pytest.skip("PostgreSQL only")
    with sync.BackgroundCheckpoints() as aside:
        assert aside.thread is None
