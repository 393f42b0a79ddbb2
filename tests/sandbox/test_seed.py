import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import seed
from sandbox.store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sites():
    demo, second = seed.build_sites(agents=25, leads=400, seed=42)
    return {"demo": demo, "second": second}


def contacts(site):
    return [lead["info"]["contact"] for lead in site["leads"]]


def test_same_seed_gives_the_same_records():
    first = seed.build_sites(agents=10, leads=50, seed=3)
    again = seed.build_sites(agents=10, leads=50, seed=3)

    assert first == again


def test_another_seed_gives_other_records():
    first = seed.build_sites(agents=10, leads=50, seed=3)
    other = seed.build_sites(agents=10, leads=50, seed=4)

    assert [lead["id"] for lead in first[0]["leads"]] != [
        lead["id"] for lead in other[0]["leads"]
    ]


def test_counts_follow_the_arguments(sites):
    assert len(sites["demo"]["agents"]) == 25
    assert len(sites["demo"]["leads"]) == 400
    assert len(sites["second"]["agents"]) == seed.DEFAULT_SECOND_SITE_AGENTS
    assert len(sites["second"]["leads"]) == seed.DEFAULT_SECOND_SITE_LEADS


def test_demo_site_holds_the_documentation_examples(sites):
    agents = {a["record"]["id"]: a for a in sites["demo"]["agents"]}
    leads = {lead["id"]: lead for lead in sites["demo"]["leads"]}

    rebecca = agents["AGENT_MDID0"]
    assert rebecca["username"] == "buum@cu.com"
    assert rebecca["roles"] == ["client", "broker"]
    assert rebecca["record"]["info"]["contact"]["first_name"] == "Rebecca"
    assert leads["LEAD_MDID0"]["info"]["contact"]["last_name"] == "Norton"
    assert leads["LEAD_MDID0"]["info"]["buyer"]["average_price"] == 250000
    assert leads["mymdidwoah"]["info"]["contact"]["email"] == "anaheard@capi.test"
    assert leads["mymdidwoah"]["info"]["seller"] == {"timeline": "4 to 6 weeks"}


def test_roles_mix_brokers_and_plain_agents(sites):
    roles = [a["roles"] for a in sites["demo"]["agents"]]

    assert roles.count(["client", "broker"]) >= 2
    assert roles.count(["client"]) >= 2
    assert {a["username"] for a in sites["second"]["agents"]} >= {
        "broker@second.test",
        "agent@second.test",
    }


def test_agent_sign_in_names_are_unique_across_sites(sites):
    names = [a["username"] for s in sites.values() for a in s["agents"]]

    assert len(names) == len(set(names))


def test_sites_do_not_share_agent_or_lead_ids(sites):
    demo_ids = {a["record"]["id"] for a in sites["demo"]["agents"]}
    demo_ids |= {lead["id"] for lead in sites["demo"]["leads"]}
    second_ids = {a["record"]["id"] for a in sites["second"]["agents"]}
    second_ids |= {lead["id"] for lead in sites["second"]["leads"]}

    assert not demo_ids & second_ids


def test_some_agents_keep_status_inside_contact(sites):
    infos = [a["record"]["info"] for a in sites["demo"]["agents"]]

    assert any("status" in info["contact"] for info in infos)
    assert any("status" in info for info in infos)
    statuses = {info.get("status") or info["contact"].get("status") for info in infos}
    assert statuses - {None} <= set(seed.AGENT_STATUSES)


def test_lead_emails_are_unique_per_site(sites):
    emails = [c["email"].lower() for c in contacts(sites["demo"])]

    assert len(emails) == len(set(emails))


def test_leads_vary_like_the_live_api(sites):
    leads = sites["demo"]["leads"]
    addresses = [c.get("mailing_address") for c in contacts(sites["demo"])]

    assert any(a and "postal_or_zip" in a for a in addresses)
    assert any(a and "postal_code" in a for a in addresses)
    assert any(a is None for a in addresses)
    assert any("phone_numbers" not in c for c in contacts(sites["demo"]))
    assert any(len(c.get("phone_numbers", {})) == 4 for c in contacts(sites["demo"]))
    assert any("notes" in lead["info"] or "labels" in lead["info"] for lead in leads)
    assert any("validation" in lead for lead in leads)
    assert {"José", "Zoë", "秀英"} <= {c["first_name"] for c in contacts(sites["demo"])}


def test_buyer_and_seller_objects_follow_the_flags(sites):
    for lead in sites["demo"]["leads"]:
        info = lead["info"]
        has_buyer = "buyer" in info or "buyer_info" in info
        has_seller = "seller" in info or "seller_info" in info
        assert has_buyer == info["is_buyer"]
        assert has_seller == info["is_seller"]
        for key in ("buyer", "buyer_info"):
            if key in info:
                assert isinstance(info[key]["average_price"], int)


def test_assigned_agents_exist_on_the_site(sites):
    agent_ids = {a["record"]["id"] for a in sites["demo"]["agents"]}

    for lead in sites["demo"]["leads"]:
        assigned = lead["info"]["assigned_agents"]
        assert "primary_agent" in assigned
        assert {ref["id"] for ref in assigned.values()} <= agent_ids


def test_registered_dates_are_iso_utc(sites):
    for lead in sites["demo"]["leads"]:
        assert lead["registered_date"].endswith("Z")
        assert len(lead["registered_date"]) == len("2022-11-06T21:41:00Z")


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_seed_command_creates_both_sites_and_keeps_them(tmp_path):
    db = tmp_path / "cli.sqlite3"

    first = run_cli("seed", "--db", str(db), "--agents", "5", "--leads", "20")
    second = run_cli("seed", "--db", str(db), "--leads", "30")

    assert first.returncode == 0, first.stderr
    assert "site demo: 5 agents, 20 leads" in first.stdout
    assert "broker@second.test" in first.stdout
    assert second.returncode == 0
    assert "nothing done" in second.stdout
    assert Store(db).count("leads", "demo") == 20


def test_seed_command_with_force_replaces_the_data(tmp_path):
    db = tmp_path / "cli.sqlite3"
    run_cli("seed", "--db", str(db), "--agents", "5", "--leads", "20")

    result = run_cli(
        "seed", "--db", str(db), "--agents", "5", "--leads", "8", "--force"
    )

    assert result.returncode == 0, result.stderr
    assert Store(db).count("leads", "demo") == 8


def test_reset_with_the_same_seed_restores_identical_records(sb):
    sb.control.reset(leads=30, seed=11)
    before = sb.control.leads("demo")
    sb.control.add_leads("demo", count=3)

    sb.control.reset(leads=30, seed=11)

    assert sb.control.leads("demo") == before
