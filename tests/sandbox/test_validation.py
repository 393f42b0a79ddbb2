import datetime as dt

import pytest

from sandbox.validation import lead_errors, normalise_lead

NOW = dt.datetime(2026, 12, 4, 15, 0, tzinfo=dt.UTC)


def known_agents(ids):
    return ids & {"AGENT_MDID1", "AGENT_MDID2"}


def fields(body):
    return [error["field"] for error in lead_errors(body, known_agents)]


def test_a_lead_with_just_an_email_is_fine():
    assert fields({"info": {"contact": {"email": "a@b.co"}}}) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "info.contact.email"),
        ({"info": []}, "info"),
        ({"info": {}}, "info.contact.email"),
        ({"info": {"contact": {"email": 5}}}, "info.contact.email"),
        ({"info": {"contact": {"email": "  "}}}, "info.contact.email"),
        ({"info": {"contact": {"email": "a@b"}}}, "info.contact.email"),
    ],
)
def test_email_problems_name_the_email_field(body, field):
    assert fields(body) == [field]


def test_types_are_checked_with_field_paths():
    body = {
        "registered_date": "yesterday",
        "info": {
            "contact": {
                "email": "a@b.co",
                "first_name": 7,
                "phone_numbers": {"fax": "123456", "home_phone": 5551234},
                "mailing_address": {"city": ["x"], "planet": "Mars"},
            },
            "is_buyer": "yes",
            "buyer_info": {"average_price": True},
            "seller": "soon",
            "source": None,
            "status": 3,
            "assigned_agents": {"boss": {"id": "x"}, "partner": "AGENT_MDID1"},
        },
    }

    assert sorted(fields(body)) == sorted(
        [
            "registered_date",
            "info.contact.first_name",
            "info.contact.phone_numbers.fax",
            "info.contact.phone_numbers.home_phone",
            "info.contact.mailing_address.city",
            "info.contact.mailing_address.planet",
            "info.is_buyer",
            "info.buyer_info.average_price",
            "info.seller",
            "info.status",
            "info.assigned_agents.boss",
            "info.assigned_agents.partner",
        ]
    )


def test_assigned_agents_must_exist():
    body = {
        "info": {
            "contact": {"email": "a@b.co"},
            "assigned_agents": {
                "primary_agent": {"id": "AGENT_MDID1"},
                "listing_agent": {"id": "AGENT_MDID99"},
            },
        }
    }

    assert fields(body) == ["info.assigned_agents.listing_agent.id"]


def test_normalise_ignores_the_id_and_fills_the_registered_date():
    record = normalise_lead(
        {"id": "mine", "info": {"contact": {"email": " a@b.co "}}}, "LEAD_1", NOW
    )

    assert record == {
        "id": "LEAD_1",
        "registered_date": "2026-12-04T15:00:00Z",
        "info": {
            "contact": {"email": "a@b.co"},
            "is_buyer": False,
            "is_seller": False,
        },
    }


def test_normalise_drops_wishes_whose_flag_is_false_and_keeps_extras():
    body = {
        "registered_date": "2022-04-14T11:21:43.371+02:00",
        "labels": ["x"],
        "info": {
            "contact": {"email": "a@b.co"},
            "is_buyer": False,
            "buyer": {"median_price": 0},
            "seller_info": {"timeline": "ASAP"},
        },
    }

    record = normalise_lead(body, "LEAD_1", NOW)

    assert record["registered_date"] == "2022-04-14T09:21:43Z"
    assert "buyer" not in record["info"]
    assert record["info"]["is_seller"] is True
    assert record["info"]["seller_info"] == {"timeline": "ASAP"}
    assert record["labels"] == ["x"]
