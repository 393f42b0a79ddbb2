"""Drop the single-column indexes on ``leads_lead.connection_id`` and
``leads_agent.connection_id``.

Every other index of both tables, and their unique (connection, cinc_id)
constraints, start with the connection, so these two served no query, and
each was one more index insert for every new row (the writes benchmark).

Only the indexes are dropped: ``AlterField`` would rebuild both tables on
SQLite (and lose the SQLite-only search index of migration 0002 with them).
"""

import django.db.models.deletion
from django.db import migrations, models

TABLES = ("leads_agent", "leads_lead")


def _index_name(schema_editor, table):
    # The name Django gave the foreign key's index in 0001.
    return schema_editor._create_index_name(table, ["connection_id"], suffix="")


def drop_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for table in TABLES:
        name = _index_name(schema_editor, table)
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def create_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for table in TABLES:
        name = _index_name(schema_editor, table)
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(name)} "
            f"ON {quote(table)} ({quote('connection_id')})"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_connection_mirror_version"),
        ("leads", "0002_list_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="agent",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="agents",
                        to="accounts.connection",
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="leads",
                        to="accounts.connection",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_indexes, create_indexes),
            ],
        )
    ]
