"""A broker's first day, in a real browser against a live portal and sandbox:
sign in, connect through CINC's consent page, watch the first sync finish,
search and filter the leads, open one, create one, and meet the duplicate
check. Every page is also checked for console errors and CSP violations."""

import re

import pytest
from playwright.sync_api import expect

from leads.models import Lead

from .support import SYNC_DEADLINE, approve_on_sandbox, connect_demo_site, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SYNC_WAIT_MS = int(SYNC_DEADLINE * 1000)


def test_broker_connects_watches_first_sync_and_works_with_leads(
    page, portal, broker_user
):
    """The whole journey; each step's page must be free of browser errors."""
    control = portal.sandbox.control
    site_leads = control.leads("demo")
    site_records = len(site_leads) + len(control.agents("demo"))

    # Sign in through the real form; the dashboard invites to connect.
    page.goto(f"{portal.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.problems.assert_clean("the sign-in page")
    sign_in(page, portal.url)
    expect(page.locator("#connect-cinc")).to_be_visible()
    expect(page.locator("#broker-name")).to_have_text("Rebecca Broker")
    page.problems.assert_clean("the empty dashboard")

    # Connect: the consent page is the sandbox's; Approve comes back to the
    # dashboard. The worker is held, so the sync waits on the page.
    portal.worker.hold()
    page.click("#connect-button")
    expect(page).to_have_url(re.compile("^" + re.escape(portal.sandbox.authorize_url)))
    approve_on_sandbox(page)
    page.wait_for_url(f"{portal.url}/")
    expect(page.locator("#messages")).to_contain_text(
        re.compile(r"Connected to CINC as .+\. The first sync has been queued\.")
    )
    page.problems.assert_clean("the dashboard after connecting")

    # The first sync is queued as a run the page shows and watches.
    progress = page.locator(".sync-progress")
    expect(progress).to_have_attribute("data-status", "queued")
    expect(progress).to_have_attribute("hx-trigger", re.compile("every"))

    # The worker starts; the progress block polls until the run is done,
    # without the page being reloaded.
    page.evaluate("window.notReloaded = true")
    portal.worker.release()
    expect(progress).to_have_attribute("data-status", "succeeded", timeout=SYNC_WAIT_MS)
    expect(progress).to_contain_text(f"{site_records} new")
    assert page.evaluate("window.notReloaded === true")
    page.problems.assert_clean("the dashboard while polling")

    # The reload link shows the figures and the chart.
    page.click("a[id^=sync-finished-reload-]")
    expect(page.locator("#lead-total")).to_have_text(f"{len(site_leads)}")
    expect(page.locator("#weekly-leads.chart-ready")).to_be_visible()
    expect(page.locator("#recent-lead-table tbody tr")).to_have_count(10)
    page.problems.assert_clean("the dashboard with data")

    # Search by name; the search lives in the URL.
    page.click("#nav-leads")
    expect(page.locator("#result-count")).to_have_text(
        f"{len(site_leads)} leads · showing 1–50"
    )
    page.fill("#id_q", "Heard")
    page.click("#apply-filters")
    expect(page).to_have_url(re.compile(r"[?&]q=Heard(&|$)"))
    expect(page.locator("#lead-table tbody tr").first).to_contain_text("Ana Heard")
    page.problems.assert_clean("the leads list, searched")

    # Filter by status: every row has it, and the count is the site's.
    closed = sum(1 for lead in site_leads if lead["info"].get("status") == "closed")
    page.click("#clear-filters")
    page.select_option("#id_status", "closed")
    page.click("#apply-filters-bottom")
    expect(page).to_have_url(re.compile(r"[?&]status=closed(&|$)"))
    expect(page.locator("#result-count")).to_have_text(f"{closed} leads")
    statuses = page.locator("#lead-table tbody tr td:nth-child(4)").all_inner_texts()
    assert len(statuses) == closed and set(statuses) == {"closed"}
    page.problems.assert_clean("the leads list, filtered")

    # Open a lead.
    page.fill("#id_q", "Heard")
    page.select_option("#id_status", "")
    page.click("#apply-filters")
    page.get_by_role("link", name="Ana Heard").click()
    expect(page.locator("#lead-name")).to_have_text("Ana Heard")
    expect(page.locator("#lead-email")).to_have_text("anaheard@capi.test")
    expect(page.locator("#lead-cinc-id")).to_have_text("mymdidwoah")
    page.problems.assert_clean("a lead's page")

    # Create a lead through the form; it is in CINC, in the mirror, and in
    # the list.
    page.click("#nav-new-lead")
    page.get_by_label("First name").fill("Walter")
    page.get_by_label("Last name").fill("Browser")
    page.get_by_label("Email").fill("walter.browser@example.com")
    page.get_by_label("Cell phone").fill("(610) 555-0199")
    page.get_by_label("This lead wants to buy").check()
    page.get_by_label("Median price").fill("$450,000")
    rebecca = page.locator("#id_primary_agent option", has_text="Rebecca Lejeune")
    page.select_option("#id_primary_agent", rebecca.get_attribute("value"))
    page.click("#create-lead-submit")
    expect(page.locator("#lead-name")).to_have_text("Walter Browser")
    expect(page.locator("#messages")).to_be_visible()
    expect(page.locator("#lead-median-price")).to_have_text("$450,000")
    expect(page.locator("#assigned-agents")).to_contain_text("Rebecca Lejeune")
    page.problems.assert_clean("the new lead's page")

    assert Lead.objects.filter(email="walter.browser@example.com").count() == 1
    assert control.stats()["leads_created"] == 1
    page.click("#nav-leads")
    page.fill("#id_q", "walter.browser")
    page.click("#apply-filters")
    expect(page.locator("#result-count")).to_have_text("1 lead")
    expect(page.locator("#lead-table")).to_contain_text("Walter Browser")
    page.problems.assert_clean("the leads list with the new lead")

    # An existing email: the portal shows what would change and sends
    # nothing until the broker confirms.
    page.click("#new-lead-button")
    page.get_by_label("First name").fill("Anna")
    page.get_by_label("Last name").fill("Heard")
    page.get_by_label("Email").fill("anaheard@capi.test")
    page.click("#create-lead-submit")
    expect(page.locator("#lead-exists")).to_be_visible()
    expect(page.locator("#existing-lead-link")).to_have_text("Ana Heard")
    first_name = page.locator("#lead-diff tr", has_text="First name")
    expect(first_name.locator("td.old")).to_have_text("Ana")
    expect(first_name.locator("td.new")).to_have_text("Anna")
    expect(page.locator("#confirm-update")).to_be_visible()
    page.problems.assert_clean("the duplicate-email confirmation")

    stats = control.stats()
    assert stats["leads_created"] == 1 and stats["requests"]["lead_create"] == 1


def test_dashboard_shows_the_first_sync_right_after_connecting(signed_in_page, portal):
    page = signed_in_page
    portal.worker.hold()
    connect_demo_site(page.client, portal.sandbox)

    page.goto(f"{portal.url}/")

    progress = page.locator(".sync-progress")
    expect(progress).to_have_attribute("data-status", "queued", timeout=1000)
    expect(page.locator("#first-sync-running")).to_be_visible(timeout=1000)
