"""Deterministic seed data: two broker sites with agents and leads.

Everything is drawn from ``random.Random(seed)`` and a Faker instance seeded
with the same number, so the same arguments always give the same records.
Faker is only used to fill small pools of names, streets and cities; records
are then combined from the pools, which keeps seeding 2,500 leads fast.

Dates are spread backwards from ``SEED_ANCHOR`` (not from "now") so that the
records do not change from one day to the next.
"""

import datetime as dt
import functools
import random
import unicodedata

from faker import Faker

DEMO_SITE = "demo"
SECOND_SITE = "second"
SANDBOX_PASSWORD = "sandbox"  # noqa: S105 - the documented sandbox login
DEMO_BROKER = "buum@cu.com"
DEMO_AGENT = "agent@demo.test"
SECOND_BROKER = "broker@second.test"
SECOND_AGENT = "agent@second.test"
SECOND_SITE_FIRST_AGENT = 1000

DEFAULT_AGENTS = 25
DEFAULT_LEADS = 2500
DEFAULT_SEED = 42
DEFAULT_SECOND_SITE_AGENTS = 8
DEFAULT_SECOND_SITE_LEADS = 300

SEED_ANCHOR = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
POOL_SIZE = 300

AGENT_STATUSES = ("active", "inactive", "onvacation", "disabled", "deleted")
AGENT_STATUS_WEIGHTS = (70, 8, 7, 5, 5)
# The documented lead statuses (the API restricts them to these four).
LEAD_STATUSES = ("unworked", "inprogress", "closed", "trash")
LEAD_STATUS_WEIGHTS = (35, 40, 15, 10)
SOURCES = (
    "Facebook",
    "Zillow",
    "Google",
    "Website",
    "Referral",
    "Open House",
    "Realtor.com",
    "Instagram",
    "Sign Call",
)
TIMELINES = (
    "ASAP",
    "1 to 3 weeks",
    "4 to 6 weeks",
    "1 to 3 months",
    "3 to 6 months",
    "6 to 12 months",
    "12+ months",
    "",
)
PHONE_KINDS = ("cell_phone", "home_phone", "work_phone", "office_phone")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.test", "capi.test")
LABELS = ("vip", "pre-approved", "first-time buyer", "investor", "relocation", "cash")
NOTES = (
    "Prefers text messages.",
    "Call after 5pm.",
    "Looking near good schools.",
    "Wants a big yard for the dog.",
    "Met at the spring open house.",
)
UNICODE_NAMES = (
    ("José", "Müller"),
    ("Zoë", "Ægir"),
    ("秀英", "王"),
    ("花子", "佐藤"),
    ("Łukasz", "Żółć"),
    ("Björk", "Guðmundsdóttir"),
    ("Šárka", "Dvořáková"),
    ("Minh", "Nguyễn"),
    ("Ömer", "Çelik"),
    ("Αλέξανδρος", "Παπαδόπουλος"),
    ("Иван", "Петров"),
    ("Seán", "Ó Briain"),
)
# A lead whose note carries markup, to check that pages escape upstream text.
MARKUP_NOTE = '<script>alert("sandbox")</script> & <b>bold</b>'

REBECCA = {
    "id": "AGENT_MDID0",
    "registered_date": "2022-05-06T17:01:49Z",
    "info": {
        "contact": {
            "first_name": "Rebecca",
            "last_name": "Lejeune",
            "phone_numbers": {
                "cell_phone": "6109586760",
                "office_phone": "5555555555",
                "home_phone": "5555555555",
                "work_phone": "5555555555",
            },
            "email": DEMO_BROKER,
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


def _doc_leads(agent_id):
    """The two leads of the documentation's list example."""
    ana = {
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
                "primary_agent": {"id": agent_id(1)},
                "listing_agent": {"id": agent_id(4)},
                "partner": {"id": agent_id(9)},
            },
            "source": "Facebook",
            "status": "unworked",
        },
    }
    devin = {
        "id": "LEAD_MDID0",
        "registered_date": "2022-11-06T21:41:00Z",
        "info": {
            "contact": {
                "first_name": "Devin",
                "last_name": "Norton",
                "email": "mo@rijegmo.fk",
                "phone_numbers": {"cell_phone": "3703089435"},
            },
            "is_buyer": True,
            "buyer": {
                "median_price": 0,
                "average_price": 250000,
                "favorite_city": "Dallas",
                "timeline": "4 to 6 weeks",
            },
            "is_seller": False,
            "assigned_agents": {
                "primary_agent": {"id": agent_id(3)},
                "listing_agent": {"id": agent_id(5)},
                "partner": {"id": agent_id(7)},
            },
            "source": "Facebook",
            "status": "unworked",
        },
    }
    return [ana, devin]


class Pools:
    """Names, streets and cities drawn once from a seeded Faker."""

    def __init__(self, seed, size=POOL_SIZE):
        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.first_names = [fake.first_name() for _ in range(size)]
        self.last_names = [fake.last_name() for _ in range(size)]
        self.streets = [fake.street_address() for _ in range(size)]
        self.cities = [(fake.city(), fake.state_abbr()) for _ in range(size // 2)]


@functools.lru_cache(maxsize=4)
def pools_for(seed):
    """The (read-only) pools of a seed; cached, as Faker is the slow part."""
    return Pools(seed)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ascii_slug(text):
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class Generator:
    """Makes agents and leads for one site from a seeded random source."""

    def __init__(self, rng, pools, taken_emails=None, taken_ids=None):
        self.rng = rng
        self.pools = pools
        self.taken_emails = set(taken_emails or ())
        self.taken_ids = set(taken_ids or ())

    # -- pieces ------------------------------------------------------------

    def phone(self):
        rng = self.rng
        return (
            f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        )

    def email(self, first, last):
        local = ".".join(part for part in (ascii_slug(first), ascii_slug(last)) if part)
        local = local or "lead"
        domain = self.rng.choice(EMAIL_DOMAINS)
        email = f"{local}@{domain}"
        while email in self.taken_emails:
            email = f"{local}{self.rng.randint(1, 99999)}@{domain}"
        self.taken_emails.add(email)
        return email

    def lead_id(self):
        lead_id = f"LEAD_{self.rng.getrandbits(40):010x}"
        while lead_id in self.taken_ids:
            lead_id = f"LEAD_{self.rng.getrandbits(40):010x}"
        self.taken_ids.add(lead_id)
        return lead_id

    def address(self, zip_key):
        city, state = self.rng.choice(self.pools.cities)
        return {
            "street": self.rng.choice(self.pools.streets),
            "city": city,
            "state": state,
            zip_key: f"{self.rng.randint(1001, 99950):05d}",
        }

    def moment(self, days_back):
        seconds = self.rng.randint(0, int(days_back * 86400))
        return SEED_ANCHOR - dt.timedelta(seconds=seconds)

    def name(self, unicode_share=0.0):
        if self.rng.random() < unicode_share:
            return self.rng.choice(UNICODE_NAMES)
        return self.rng.choice(self.pools.first_names), self.rng.choice(
            self.pools.last_names
        )

    # -- records -----------------------------------------------------------

    def agent(self, agent_id, *, email=None, status=None, status_in_contact=None):
        rng = self.rng
        first, last = self.name()
        contact = {
            "first_name": first,
            "last_name": last,
            "phone_numbers": {"cell_phone": self.phone()},
            "email": email or self.email(first, last),
        }
        if email:
            self.taken_emails.add(email)
        if rng.random() < 0.5:
            contact["phone_numbers"]["office_phone"] = self.phone()
        if rng.random() < 0.7:
            contact["mailing_address"] = self.address("postal_or_zip")
        info = {"contact": contact}
        if status is None and (status_in_contact or rng.random() < 0.95):
            status = rng.choices(AGENT_STATUSES, AGENT_STATUS_WEIGHTS)[0]
        if status is not None:
            # NOTES 8: some agents carry their status inside info.contact.
            if status_in_contact is None:
                status_in_contact = email is None and rng.random() < 0.15
            if status_in_contact:
                contact["status"] = status
            else:
                info["status"] = status
        return {
            "id": agent_id,
            "registered_date": iso(self.moment(5 * 365)),
            "info": info,
        }

    def lead(self, agent_ids, *, name=None, note=None, registered=None):
        rng = self.rng
        first, last = name or self.name(unicode_share=0.04)
        contact = {"first_name": first, "last_name": last}
        phone_count = rng.choices((0, 1, 2, 3, 4), (10, 45, 25, 12, 8))[0]
        if phone_count:
            kinds = sorted(rng.sample(PHONE_KINDS, phone_count), key=PHONE_KINDS.index)
            contact["phone_numbers"] = {kind: self.phone() for kind in kinds}
        contact["email"] = self.email(first, last)
        if rng.random() < 0.85:
            # NOTES 7: both spellings of the zip key occur.
            zip_key = "postal_or_zip" if rng.random() < 0.5 else "postal_code"
            contact["mailing_address"] = self.address(zip_key)

        info = {"contact": contact}
        info["is_buyer"] = rng.random() < 0.6
        if info["is_buyer"]:
            average = rng.randrange(80_000, 1_500_000, 5_000)
            median = (
                0 if rng.random() < 0.2 else rng.randrange(80_000, 1_500_000, 5_000)
            )
            key = "buyer_info" if rng.random() < 0.05 else "buyer"  # NOTES 9
            info[key] = {
                "median_price": median,
                "average_price": average,
                "favorite_city": rng.choice(self.pools.cities)[0],
                "timeline": rng.choice(TIMELINES),
            }
        info["is_seller"] = rng.random() < 0.35
        if info["is_seller"]:
            key = "seller_info" if rng.random() < 0.05 else "seller"
            info[key] = {"timeline": rng.choice(TIMELINES)}

        assigned = {"primary_agent": {"id": rng.choice(agent_ids)}}
        if rng.random() < 0.4:
            assigned["listing_agent"] = {"id": rng.choice(agent_ids)}
        if rng.random() < 0.25:
            assigned["partner"] = {"id": rng.choice(agent_ids)}
        info["assigned_agents"] = assigned
        info["source"] = rng.choice(SOURCES)
        info["status"] = rng.choices(LEAD_STATUSES, LEAD_STATUS_WEIGHTS)[0]

        # NOTES 12: fields the documentation does not list.
        if note is not None or rng.random() < 0.2:
            info["notes"] = note if note is not None else rng.choice(NOTES)
        if rng.random() < 0.2:
            info["labels"] = rng.sample(LABELS, rng.randint(1, 3))
        record = {
            "id": self.lead_id(),
            "registered_date": iso(registered or self.moment(2 * 365)),
            "info": info,
        }
        if rng.random() < 0.3:
            record["validation"] = {"email_valid": rng.random() < 0.9}
        return record

    def leads(self, agent_ids, count, *, fixed_names=(), markup_note_at=None):
        """``count`` leads ordered by registration date (oldest first)."""
        made = []
        for index in range(count):
            name = fixed_names[index] if index < len(fixed_names) else None
            note = MARKUP_NOTE if index == markup_note_at else None
            made.append(self.lead(agent_ids, name=name, note=note))
        made.sort(key=lambda lead: lead["registered_date"])
        return made


def _site(name, rng, pools, agent_count, lead_count, taken_emails, demo):
    gen = Generator(rng, pools, taken_emails=taken_emails)
    first = 0 if demo else SECOND_SITE_FIRST_AGENT
    agent_count = max(agent_count, 2)
    ids = [f"AGENT_MDID{first + i}" for i in range(agent_count)]
    agents = []
    for index, agent_id in enumerate(ids):
        broker = index == 0 or (index >= 10 and index % 10 == 0)
        roles = ["client", "broker"] if broker else ["client"]
        if demo and index == 0:
            record = REBECCA
            gen.taken_emails.add(DEMO_BROKER)
        elif index == 0:
            record = gen.agent(agent_id, email=SECOND_BROKER, status="active")
        elif index == 1:
            email = DEMO_AGENT if demo else SECOND_AGENT
            record = gen.agent(agent_id, email=email, status="active")
        else:
            record = gen.agent(
                agent_id,
                status="active" if broker else None,
                status_in_contact=True if index == 3 else None,
            )
        username = record["info"]["contact"]["email"]
        agents.append(
            {
                "record": record,
                "username": username,
                "password": SANDBOX_PASSWORD,
                "roles": roles,
            }
        )

    def agent_id(number):
        return ids[number % len(ids)]

    leads = []
    if demo:
        leads = _doc_leads(agent_id)[: max(lead_count, 0)]
        for lead in leads:
            gen.taken_ids.add(lead["id"])
            gen.taken_emails.add(lead["info"]["contact"]["email"])
    generated = max(lead_count - len(leads), 0)
    fixed = UNICODE_NAMES[:3] if demo else ()
    leads += gen.leads(ids, generated, fixed_names=fixed, markup_note_at=3)
    return {"name": name, "agents": agents, "leads": leads}


def build_sites(
    *,
    agents=DEFAULT_AGENTS,
    leads=DEFAULT_LEADS,
    seed=DEFAULT_SEED,
    second_site_agents=DEFAULT_SECOND_SITE_AGENTS,
    second_site_leads=DEFAULT_SECOND_SITE_LEADS,
):
    """Both sites' records, the same for the same arguments."""
    rng = random.Random(seed)
    pools = pools_for(seed)
    taken_emails = set()  # agent sign-in names are unique across sites
    demo = _site(DEMO_SITE, rng, pools, agents, leads, taken_emails, demo=True)
    taken_emails = {a["username"] for a in demo["agents"]}
    second = _site(
        SECOND_SITE,
        rng,
        pools,
        second_site_agents,
        second_site_leads,
        taken_emails,
        demo=False,
    )
    return [demo, second]
