"""The SQLite connection settings the sync's write rate depends on (the
writes benchmark measured them: see cinc_portal/settings.py)."""

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite connection settings"
    ),
]


def _pragma(name):
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("journal_mode", "wal"),
        ("synchronous", 1),  # NORMAL
        ("busy_timeout", 30000),
        ("cache_size", -16384),  # KiB: 16 MiB
        ("wal_autocheckpoint", 10000),
        ("journal_size_limit", 64 * 1024 * 1024),
    ],
)
def test_every_connection_gets_the_pragmas(name, value):
    assert _pragma(name) == value
