"""The broker's pages in a real browser, with a synced site: free of console
errors and CSP violations, no sideways scrolling on a phone, and the main
actions within reach of the keyboard."""

import re

import pytest
from playwright.sync_api import expect

from .support import PHONE, horizontal_overflow, tab_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_agent_lead_and_form_pages_show_without_browser_errors(synced_page, portal):
    page = synced_page

    page.click("#nav-agents")
    expect(page.locator("h1")).to_have_text("Agents")
    page.problems.assert_clean("the agents list")

    page.get_by_role("link", name="Rebecca Lejeune").first.click()
    expect(page.locator("h1")).to_contain_text("Rebecca Lejeune")
    page.problems.assert_clean("an agent's page")

    page.locator("a.lead-link").first.click()
    expect(page.locator("#lead-name")).to_be_visible()
    page.locator("#raw-record summary").click()
    expect(page.locator("#raw-record pre")).to_be_visible()
    page.problems.assert_clean("a lead's page")

    page.click("#nav-leads")
    page.click("a[data-sort=name]")
    expect(page).to_have_url(re.compile(r"[?&]sort=name(&|$)"))
    expect(page.locator("th:has(a[data-sort=name])")).to_have_attribute(
        "aria-sort", "ascending"
    )
    page.problems.assert_clean("the leads list sorted by name")

    page.click("#nav-new-lead")
    page.click("#create-lead-submit")
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#field-email")).to_contain_text(
        "CINC needs an email for every lead."
    )
    page.problems.assert_clean("the new-lead form with errors")

    page.click("#logout-button")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.problems.assert_clean("the sign-in page after signing out")


def test_pages_fit_a_phone_screen_without_sideways_scrolling(synced_page, portal):
    page = synced_page
    page.set_viewport_size(PHONE)
    lead_url = page.locator("#recent-lead-table a.lead-link").first.get_attribute(
        "href"
    )
    pages = {
        "dashboard": "/",
        "leads list": "/leads/",
        "lead page": lead_url,
        "new-lead form": "/leads/new/",
        "agents list": "/agents/",
    }

    overflowing = {}
    for name, path in pages.items():
        page.goto(portal.url + path)
        if horizontal_overflow(page):
            overflowing[name] = horizontal_overflow(page)

    assert overflowing == {}, f"pages wider than 375 px, by px: {overflowing}"
    page.problems.assert_clean("the pages at phone width")


def test_tab_reaches_the_dashboards_main_actions(synced_page):
    page = synced_page
    connection = page.connection.uuid

    reached = tab_order(page, 40)

    assert reached[0] == "" or reached[0].startswith("A:Skip"), reached
    for wanted in (
        "nav-dashboard",
        "nav-leads",
        "nav-agents",
        "nav-new-lead",
        "logout-button",
        f"sync-now-{connection}",
        f"reconnect-{connection}",
        f"disconnect-{connection}",
        "all-leads-link",
    ):
        assert wanted in reached, f"Tab never reaches #{wanted}: {reached}"


def test_skip_link_moves_the_keyboard_to_the_page_content(synced_page):
    page = synced_page
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.locator("#main")).to_be_focused()


def test_tab_reaches_search_export_and_new_lead_on_the_leads_list(synced_page, portal):
    page = synced_page
    page.goto(f"{portal.url}/leads/")

    reached = tab_order(page, 30)

    for wanted in (
        "export-csv",
        "new-lead-button",
        "id_q",
        "apply-filters",
        "id_status",
        "apply-filters-bottom",
    ):
        assert wanted in reached, f"Tab never reaches #{wanted}: {reached}"


def test_lead_form_can_be_filled_and_sent_by_keyboard_alone(synced_page, portal):
    page = synced_page
    page.goto(f"{portal.url}/leads/new/")
    page.focus("#id_first_name")

    page.keyboard.type("Kim")
    page.keyboard.press("Tab")
    page.keyboard.type("Keys")
    page.keyboard.press("Tab")
    page.keyboard.type("kim.keys@example.com")
    page.keyboard.press("Enter")

    expect(page.locator("#lead-name")).to_have_text("Kim Keys")
    page.problems.assert_clean("the new lead sent by keyboard")
