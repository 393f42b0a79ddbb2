"""The pages benchmark on a tiny mirror: timings, query counts, CSV."""

import pytest

from bench import pages

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    return pages.seed(leads=150)


def test_seed_names_the_broker_a_lead_and_search_terms(seeded):
    assert seeded["leads"] == 150
    assert seeded["broker"]
    assert seeded["search_name"]
    assert seeded["search_phone"].isdigit()


def test_pages_benchmark_times_and_counts_every_page(seeded):
    figures = pages.run(
        broker=seeded["broker"],
        lead_uuid=seeded["lead_uuid"],
        search_name=seeded["search_name"],
        search_phone=seeded["search_phone"],
        leads=seeded["leads"],
        repeats=2,
        deep_page=3,
    )

    names = [page["page"] for page in figures["pages"]]
    assert names == [
        "leads list",
        "search: name",
        "search: phone digits",
        "filtered + sorted",
        "deep page (3)",
        "lead page",
        "dashboard",
    ]
    for page in figures["pages"]:
        assert page["n"] == 2
        assert page["queries"] > 0
        assert page["median_ms"] <= page["p95_ms"]
    counted = [page for page in figures["pages"] if "queries_by_page_size" in page]
    assert [set(page["queries_by_page_size"]) for page in counted] == [
        {"10", "50", "200"}
    ] * 3


def test_page_size_is_restored_after_counting(seeded):
    from leads import views

    before = views.PAGE_SIZE
    client = pages._client(seeded["broker"])

    pages.queries_by_page_size(client, "/leads/")

    assert views.PAGE_SIZE == before


def test_csv_benchmark_streams_every_lead(seeded):
    figures = pages.run_csv(broker=seeded["broker"], leads=seeded["leads"])

    assert figures["rows"] == 150
    assert figures["rss_before_mb"] > 0
    assert figures["peak_rss_mb"] > 0
    assert "growth_mb" in figures
