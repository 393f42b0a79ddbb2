"""Small factories for mirrored rows, for tests that need no sandbox.

Rows are written as the sync would write them (``search_text`` included),
so pages and filters see what they see in production.
"""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Connection
from leads.models import Agent, Lead, LeadChange, SyncRun

_numbers = itertools.count(1)


def make_connection(broker, *, scopes=("api:read", "api:create"), **fields):
    number = next(_numbers)
    values = {
        "broker": broker,
        "api_url": "http://127.0.0.1:9/v2/site",
        "cinc_agent_id": f"AGENT_BROKER{number}",
        "cinc_username": f"broker{number}@example.com",
        "cinc_agent_name": f"Site {number}",
        "cinc_roles": ["broker"],
        "scopes": list(scopes),
        "requested_scopes": ["api:read", "api:create"],
        "token_expires_at": timezone.now() + timedelta(hours=1),
    }
    values.update(fields)
    return Connection.objects.create(**values)


def make_agent(connection, **fields):
    number = next(_numbers)
    values = {
        "connection": connection,
        "cinc_id": f"AGENT_{number}",
        "first_name": "Agent",
        "last_name": f"Number{number}",
        "email": f"agent{number}@example.com",
        "cell_phone": "6105550100",
        "status": "active",
        "registered_at": timezone.now() - timedelta(days=400),
        "raw": {"id": f"AGENT_{number}"},
        "content_hash": f"{number:064d}",
    }
    values.update(fields)
    return Agent.objects.create(**values)


def search_text(lead):
    phones = (lead.cell_phone, lead.home_phone, lead.work_phone, lead.office_phone)
    digits = ["".join(ch for ch in phone if ch.isdigit()) for phone in phones]
    parts = [lead.first_name, lead.last_name, lead.email, *digits]
    return " ".join(part for part in parts if part).lower()


def lead_values(connection, **fields):
    number = next(_numbers)
    values = {
        "connection": connection,
        "cinc_id": f"LEAD_{number}",
        "first_name": "Lead",
        "last_name": f"Person{number}",
        "email": f"lead{number}@example.com",
        "cell_phone": f"404555{number % 10000:04d}",
        "city": "Atlanta",
        "state": "GA",
        "zip_code": "30301",
        "status": "unworked",
        "source": "Facebook",
        "registered_at": timezone.now() - timedelta(days=number % 60),
        "content_hash": f"{number:064d}",
    }
    values.update(fields)
    values.setdefault(
        "raw",
        {
            "id": values["cinc_id"],
            "info": {"contact": {"email": values["email"]}},
        },
    )
    for role, column in (
        ("primary_agent", "primary_agent_cinc_id"),
        ("listing_agent", "listing_agent_cinc_id"),
        ("partner", "partner_cinc_id"),
    ):
        agent = values.get(role)
        if agent is not None:
            values.setdefault(column, agent.cinc_id)
    return values


def make_lead(connection, **fields):
    lead = Lead(**lead_values(connection, **fields))
    lead.search_text = search_text(lead)
    lead.save()
    return lead


def make_leads(connection, count, **fields):
    leads = []
    for _ in range(count):
        lead = Lead(**lead_values(connection, **fields))
        lead.search_text = search_text(lead)
        leads.append(lead)
    return Lead.objects.bulk_create(leads)


def make_change(lead, **fields):
    values = {
        "lead": lead,
        "field": "status",
        "old_value": "unworked",
        "new_value": "inprogress",
    }
    values.update(fields)
    return LeadChange.objects.create(**values)


def make_run(connection, **fields):
    values = {"connection": connection, "kind": SyncRun.Kind.FULL}
    values.update(fields)
    return SyncRun.objects.create(**values)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Brokers' passwords hashed with a fast hasher (import this fixture into
    a test module to use it: hashing is most of a view test's setup)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
