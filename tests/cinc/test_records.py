"""Parsing agent and lead records, and building a lead to POST."""

import copy
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cinc.errors import RecordError
from cinc.records import (
    AgentRecord,
    LeadRecord,
    _frozen,
    lead_payload,
    parse_agent,
    parse_lead,
    parse_many,
)

# The documentation's examples (trailing commas removed).
DOC_AGENT = {
    "id": "AGENT_MDID0",
    "registered_date": "2022-05-06T17:01:49Z",
    "info": {
        "contact": {
            "first_name": "Rebecca",
            "last_name": "Lejeune",
            "phone_numbers": {
                "cell_phone": "6109586760",
                "office_phone": "5555555555",
                "home_phone": "5555555556",
                "work_phone": "5555555557",
            },
            "email": "buum@cu.com",
            "mailing_address": {
                "street": "444 Office St",
                "city": "Marietta",
                "state": "GA",
                "postal_or_zip": "30067",
            },
        },
        "status": "active",
    },
}

DOC_AGENT_STATUS_IN_CONTACT = {
    "id": "agentid",
    "registered_date": "2022-12-18T20:27:25Z",
    "info": {
        "contact": {
            "first_name": "Agent",
            "last_name": "Peepeepoopoo",
            "email": "agentpeepoo@capi.test",
            "phone_numbers": {"cell_phone": "4044041234"},
            "status": "active",
        }
    },
}

DOC_LEAD = {
    "id": "LEAD_MDID0",
    "registered_date": "2022-04-14T09:21:43Z",
    "info": {
        "contact": {
            "first_name": "Janis",
            "last_name": "A. Doe",
            "phone_numbers": {"cell_phone": "9127562309"},
            "email": "jane.doe@email.com",
            "mailing_address": {
                "street": "9390 Ford Ave",
                "city": "Richmond Hill",
                "state": "Georgia",
                "postal_code": "31324",
            },
        },
        "is_buyer": True,
        "buyer": {
            "median_price": 0,
            "average_price": 250000,
            "favorite_city": "Dallas",
            "timeline": "4 to 6 weeks",
        },
        "is_seller": True,
        "seller": {"timeline": "4 to 6 weeks"},
        "assigned_agents": {
            "primary_agent": {"id": "AGENT_MDID3"},
            "listing_agent": {"id": "AGENT_MDID5"},
            "partner": {"id": "AGENT_MDID7"},
        },
        "source": "Facebook",
        "status": "unworked",
    },
}

DOC_SELLER_ONLY = {
    "id": "mymdidwoah",
    "registered_date": "2023-01-18T20:27:25Z",
    "info": {
        "contact": {
            "first_name": "Ana",
            "last_name": "Heard",
            "email": "anaheard@capi.test",
            "phone_numbers": {"cell_phone": "4706996288"},
        },
        "is_buyer": False,
        "is_seller": True,
        "seller": {"timeline": "4 to 6 weeks"},
        "assigned_agents": {
            "primary_agent": {"id": "AGENT_MDID1"},
            "listing_agent": {"id": "AGENT_MDID4"},
            "partner": {"id": "AGENT_MDID9"},
        },
        "source": "Facebook",
        "status": "unworked",
    },
}


def with_info(base, **changes):
    record = copy.deepcopy(base)
    record["info"].update(changes)
    return record


# Agents


def test_parse_agent_reads_the_documented_example():
    agent = parse_agent(DOC_AGENT)

    assert agent == AgentRecord(
        id="AGENT_MDID0",
        registered_at=datetime(2022, 5, 6, 17, 1, 49, tzinfo=UTC),
        first_name="Rebecca",
        last_name="Lejeune",
        email="buum@cu.com",
        cell_phone="6109586760",
        home_phone="5555555556",
        work_phone="5555555557",
        office_phone="5555555555",
        street="444 Office St",
        city="Marietta",
        state="GA",
        zip="30067",
        status="active",
    )
    assert agent.raw is DOC_AGENT


def test_parse_agent_reads_status_inside_contact():
    agent = parse_agent(DOC_AGENT_STATUS_IN_CONTACT)

    assert agent.status == "active"
    assert agent.street is None
    assert agent.home_phone is None


def test_parse_agent_prefers_status_in_info():
    record = copy.deepcopy(DOC_AGENT)
    record["info"]["contact"]["status"] = "inactive"

    assert parse_agent(record).status == "active"


def test_parse_agent_accepts_a_record_without_info():
    agent = parse_agent({"id": "A1"})

    assert agent.id == "A1"
    assert agent.first_name is None
    assert agent.registered_at is None
    assert agent.status is None


def test_parse_agent_strips_strings_and_keeps_unicode():
    record = copy.deepcopy(DOC_AGENT)
    record["id"] = "  AGENT_1 "
    record["info"]["contact"]["first_name"] = "  Zoë "
    record["info"]["contact"]["last_name"] = "Ångström-Łukasz 李"

    agent = parse_agent(record)

    assert agent.id == "AGENT_1"
    assert agent.first_name == "Zoë"
    assert agent.last_name == "Ångström-Łukasz 李"


def test_parse_agent_keeps_unknown_fields_in_raw():
    record = copy.deepcopy(DOC_AGENT)
    record["notes"] = [{"text": "called"}]
    record["info"]["labels"] = ["vip"]

    agent = parse_agent(record)

    assert agent.raw["notes"] == [{"text": "called"}]
    assert agent.raw["info"]["labels"] == ["vip"]


def test_parse_agent_reads_numbers_given_as_integers():
    record = copy.deepcopy(DOC_AGENT)
    record["id"] = 12
    record["info"]["contact"]["phone_numbers"]["cell_phone"] = 6109586760

    agent = parse_agent(record)

    assert agent.id == "12"
    assert agent.cell_phone == "6109586760"


@pytest.mark.parametrize(
    "record, record_id",
    [
        ({"registered_date": "2022-05-06T17:01:49Z"}, None),
        ({"id": ""}, None),
        ({"id": "   "}, None),
        ({"id": None}, None),
        ({"id": ["A1"]}, None),
        ({"id": "A1", "info": "active"}, "A1"),
        ({"id": "A1", "info": {"contact": []}}, "A1"),
        ({"id": "A1", "info": {"contact": {"phone_numbers": "555"}}}, "A1"),
        ({"id": "A1", "info": {"contact": {"email": {"a": 1}}}}, "A1"),
        ({"id": "A1", "registered_date": "yesterday"}, "A1"),
        ({"id": "A1", "registered_date": 1651856509}, "A1"),
    ],
)
def test_parse_agent_refuses_wrong_types(record, record_id):
    with pytest.raises(RecordError) as caught:
        parse_agent(record)

    assert caught.value.record_id == record_id


def test_parse_agent_refuses_a_non_object():
    with pytest.raises(RecordError):
        parse_agent(["AGENT_MDID0"])


# Leads


def test_parse_lead_reads_the_documented_example():
    lead = parse_lead(DOC_LEAD)

    assert lead == LeadRecord(
        id="LEAD_MDID0",
        registered_at=datetime(2022, 4, 14, 9, 21, 43, tzinfo=UTC),
        first_name="Janis",
        last_name="A. Doe",
        email="jane.doe@email.com",
        cell_phone="9127562309",
        street="9390 Ford Ave",
        city="Richmond Hill",
        state="Georgia",
        zip="31324",
        is_buyer=True,
        is_seller=True,
        buyer_median_price=Decimal(0),
        buyer_average_price=Decimal(250000),
        favorite_city="Dallas",
        buyer_timeline="4 to 6 weeks",
        seller_timeline="4 to 6 weeks",
        primary_agent_id="AGENT_MDID3",
        listing_agent_id="AGENT_MDID5",
        partner_agent_id="AGENT_MDID7",
        source="Facebook",
        status="unworked",
    )


def test_parse_lead_reads_postal_or_zip_and_postal_code():
    with_code = parse_lead(DOC_LEAD)
    record = copy.deepcopy(DOC_LEAD)
    address = record["info"]["contact"]["mailing_address"]
    address["postal_or_zip"] = address.pop("postal_code")

    assert with_code.zip == "31324"
    assert parse_lead(record).zip == "31324"


def test_parse_lead_reads_buyer_info_and_seller_info():
    record = copy.deepcopy(DOC_LEAD)
    record["info"]["buyer_info"] = record["info"].pop("buyer")
    record["info"]["seller_info"] = {"timeline": "now"}
    del record["info"]["seller"]

    lead = parse_lead(record)

    assert lead.buyer_average_price == Decimal(250000)
    assert lead.favorite_city == "Dallas"
    assert lead.seller_timeline == "now"


def test_parse_lead_without_buyer_object_has_no_buyer_details():
    lead = parse_lead(DOC_SELLER_ONLY)

    assert lead.is_buyer is False
    assert lead.buyer_median_price is None
    assert lead.buyer_average_price is None
    assert lead.favorite_city is None
    assert lead.buyer_timeline is None
    assert lead.seller_timeline == "4 to 6 weeks"
    assert lead.zip is None


def test_parse_lead_without_flags_infers_them_from_the_objects():
    record = copy.deepcopy(DOC_SELLER_ONLY)
    del record["info"]["is_buyer"]
    del record["info"]["is_seller"]

    lead = parse_lead(record)

    assert lead.is_buyer is False
    assert lead.is_seller is True


def test_parse_lead_without_assigned_agents_has_no_agent_ids():
    record = copy.deepcopy(DOC_LEAD)
    del record["info"]["assigned_agents"]
    record["info"]["contact"] = None

    lead = parse_lead(record)

    assert lead.primary_agent_id is None
    assert lead.partner_agent_id is None
    assert lead.email is None


@pytest.mark.parametrize(
    "price, expected",
    [
        (250000, Decimal(250000)),
        (249999.5, Decimal("249999.5")),
        ("300000", Decimal(300000)),
        (" 1,250,000.00 ", Decimal("1250000.00")),
        ("", None),
        (None, None),
    ],
)
def test_parse_lead_reads_prices(price, expected):
    record = with_info(DOC_LEAD, buyer={"average_price": price})

    assert parse_lead(record).buyer_average_price == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"buyer": {"average_price": "about a million"}},
        {"buyer": {"median_price": True}},
        {"buyer": {"median_price": "NaN"}},
        {"buyer": {"median_price": [1]}},
        {"buyer": "yes"},
        {"seller": None, "seller_info": 4},
        {"is_buyer": "maybe"},
        {"is_seller": 7},
        {"assigned_agents": {"primary_agent": "AGENT_MDID3"}},
        {"source": {"name": "Facebook"}},
    ],
)
def test_parse_lead_refuses_wrong_types(changes):
    record = with_info(DOC_LEAD, **changes)

    with pytest.raises(RecordError) as caught:
        parse_lead(record)

    assert caught.value.record_id == "LEAD_MDID0"
    assert "LEAD_MDID0" in str(caught.value)


def test_parse_lead_reads_flags_given_as_strings():
    lead = parse_lead(with_info(DOC_LEAD, is_buyer="false", is_seller="True"))

    assert lead.is_buyer is False
    assert lead.is_seller is True


def test_records_are_frozen_and_hashable():
    lead = parse_lead(DOC_LEAD)

    with pytest.raises(AttributeError):
        lead.email = "other@example.com"
    assert hash(lead) == hash(parse_lead(copy.deepcopy(DOC_LEAD)))


def test_parse_many_separates_good_records_from_errors():
    records, errors = parse_many([DOC_LEAD, {"id": ""}, DOC_SELLER_ONLY], parse_lead)

    assert [r.id for r in records] == ["LEAD_MDID0", "mymdidwoah"]
    assert len(errors) == 1


# lead_payload


def test_lead_payload_builds_the_documented_shape():
    payload = lead_payload(
        {
            "first_name": " Janis ",
            "last_name": "A. Doe",
            "email": "jane.doe@email.com",
            "cell_phone": "9127562309",
            "home_phone": "",
            "street": "9390 Ford Ave",
            "city": "Richmond Hill",
            "state": "Georgia",
            "zip": "31324",
            "is_buyer": True,
            "median_price": Decimal("0"),
            "average_price": "250000",
            "favorite_city": "Dallas",
            "buyer_timeline": "4 to 6 weeks",
            "is_seller": False,
            "seller_timeline": "4 to 6 weeks",
            "primary_agent_id": "AGENT_MDID3",
            "listing_agent_id": "",
            "partner_agent_id": None,
        }
    )

    assert payload == {
        "info": {
            "contact": {
                "first_name": "Janis",
                "last_name": "A. Doe",
                "email": "jane.doe@email.com",
                "phone_numbers": {"cell_phone": "9127562309"},
                "mailing_address": {
                    "street": "9390 Ford Ave",
                    "city": "Richmond Hill",
                    "state": "Georgia",
                    "postal_or_zip": "31324",
                },
            },
            "is_buyer": True,
            "buyer": {
                "median_price": 0,
                "average_price": 250000,
                "favorite_city": "Dallas",
                "timeline": "4 to 6 weeks",
            },
            "is_seller": False,
            "assigned_agents": {"primary_agent": {"id": "AGENT_MDID3"}},
        }
    }


def test_lead_payload_can_send_postal_code():
    payload = lead_payload({"email": "a@b.test", "zip": "31324"}, zip_key="postal_code")

    assert payload["info"]["contact"]["mailing_address"] == {"postal_code": "31324"}


def test_lead_payload_leaves_out_empty_objects():
    payload = lead_payload({"email": "a@b.test", "is_buyer": False, "city": " "})

    assert payload == {
        "info": {
            "contact": {"email": "a@b.test"},
            "is_buyer": False,
            "is_seller": False,
        }
    }


def test_lead_payload_sends_seller_details_only_for_sellers():
    payload = lead_payload(
        {"email": "a@b.test", "is_seller": True, "seller_timeline": "soon"}
    )

    assert payload["info"]["seller"] == {"timeline": "soon"}


def test_lead_payload_round_trips_through_parse_lead():
    fields = {
        "email": "zoë@example.test",
        "first_name": "Zoë",
        "is_buyer": True,
        "average_price": 410000,
        "is_seller": True,
        "seller_timeline": "3 months",
        "partner_agent_id": "AGENT_MDID7",
    }

    lead = parse_lead({"id": "L1", **lead_payload(fields)})

    assert lead.email == "zoë@example.test"
    assert lead.buyer_average_price == Decimal(410000)
    assert lead.seller_timeline == "3 months"
    assert lead.partner_agent_id == "AGENT_MDID7"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"first_name": "No Email"}, "email"),
        ({"email": "  "}, "email"),
        ({"email": "a@b.test", "zip_code": "1"}, "zip_code"),
        ({"email": "a@b.test", "average_price": "lots"}, "average_price"),
    ],
)
def test_lead_payload_refuses_bad_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        lead_payload(fields)


def test_lead_payload_refuses_an_unknown_zip_key():
    with pytest.raises(ValueError):
        lead_payload({"email": "a@b.test"}, zip_key="zip")


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00", "0001-01-01T03:00:00+05:00", "9999-12-31T23:59:59-05:00"],
)
def test_dates_at_the_ends_of_the_range_leave_the_registration_date_unknown(value):
    record = parse_lead({"id": "L1", "registered_date": value})

    assert record.registered_at is None
    assert record.raw["registered_date"] == value


def test_dates_inside_the_range_are_read_in_utc():
    record = parse_lead({"id": "L1", "registered_date": "1900-01-01T05:00:00+05:00"})

    assert record.registered_at.isoformat() == "1900-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("parse", "raw"), [(parse_lead, DOC_LEAD), (parse_agent, DOC_AGENT)]
)
def test_a_parsed_record_is_frozen_and_alike_one_built_field_by_field(parse, raw):
    record = parse(raw)
    built = type(record)(
        **{item.name: getattr(record, item.name) for item in dataclasses.fields(record)}
    )

    assert record == built
    assert repr(record) == repr(built)
    assert hash(record) == hash(built)
    assert dataclasses.asdict(record) == dataclasses.asdict(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.email = "other@example.test"
    assert dataclasses.replace(record, email="x@ex.test").email == "x@ex.test"


def test_a_record_built_with_a_missing_or_unknown_field_is_refused():
    with pytest.raises(TypeError, match="LeadRecord fields differ"):
        _frozen(LeadRecord, {"id": "L1"})
