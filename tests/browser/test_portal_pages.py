"""The portal's other pages in the browser: the manager's experts and users, the payout
profile's field errors, an expert's public page and its direct request."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PASSWORD, Site
from tests.browser.helpers import ended_session

pytestmark = pytest.mark.timeout(300)


async def test_manager_verifies_suspends_and_restores_an_expert(site: Site) -> None:
    expert = await site.expert("Erin Expert")
    manager = await site.manager()
    ep = await site.signed_in(expert, "#/preferences")
    await expect(ep.get_by_test_id("pref-verification")).to_have_text("pending")

    # Verification: the expert's open page hears it (verification.update) and reloads.
    mp = await site.signed_in(manager, "#/manager/experts")
    row = mp.get_by_test_id("user-row").filter(has_text=expert.email)
    await row.get_by_test_id("verification-select").select_option("verified")
    await expect(mp.get_by_test_id("status-text")).to_contain_text("Erin Expert is now verified")
    await expect(ep.get_by_test_id("toast").last).to_contain_text("now verified")
    await expect(ep.get_by_test_id("pref-verification")).to_have_text("verified")

    # Suspension closes his socket with 4403: back to the sign-in, told why, no reconnect.
    await mp.get_by_test_id("manager-tab-users").click()
    await mp.get_by_test_id("users-q").fill(expert.email)
    await mp.get_by_test_id("users-search").click()
    row = mp.get_by_test_id("user-row").filter(has_text=expert.email)
    await expect(row).to_have_count(1)
    await row.get_by_test_id("user-suspend").click()
    await row.get_by_test_id("suspend-reason").fill("Fake reviews")
    await row.get_by_test_id("suspend-confirm").click()
    await expect(row.get_by_test_id("user-status")).to_have_text("suspended")
    await expect(ep.get_by_test_id("login-form")).to_be_visible()
    await expect(ep.get_by_test_id("status-text")).to_contain_text("suspended")
    await ep.get_by_test_id("login-email").fill(expert.email)
    await ep.get_by_test_id("login-password").fill(PASSWORD)
    await ep.get_by_test_id("login-submit").click()
    await expect(ep.get_by_test_id("status-text")).to_contain_text("account suspended")

    # Restored, he signs in again; the audit log has all three.
    await row.get_by_test_id("user-restore").click()
    await expect(row.get_by_test_id("user-status")).to_have_text("active")
    await ep.get_by_test_id("login-submit").click()
    await expect(ep.get_by_test_id("conn")).to_have_attribute("data-state", "online")
    await mp.get_by_test_id("manager-tab-audit").click()
    await expect(mp.get_by_test_id("audit-row")).to_have_count(3)


async def test_payout_profile_shows_field_errors_and_masked_values(site: Site) -> None:
    expert = await site.expert("Erin Expert")
    ep = await site.signed_in(expert, "#/payout")
    await expect(ep.get_by_test_id("payout-complete")).to_have_text("Incomplete")
    await expect(ep.get_by_test_id("payout-missing")).to_contain_text("billing information")

    # A bad IBAN: the server's 422 shows next to the IBAN.
    await ep.get_by_test_id("billing-holder").fill("Erin Expert")
    await ep.get_by_test_id("billing-iban").fill("DE89 3704 0044 0532 0130 01")
    await ep.get_by_test_id("billing-save").click()
    iban_error = ep.locator(
        "#" + await ep.get_by_test_id("billing-iban").get_attribute("id") + "-err"
    )
    await expect(iban_error).to_be_visible()
    await expect(iban_error).to_contain_text("IBAN")
    await expect(ep.get_by_test_id("billing-iban")).to_have_attribute("aria-invalid", "true")

    # A US account instead: saved, shown masked.
    await ep.get_by_test_id("billing-type-us").check()
    await ep.get_by_test_id("billing-account").fill("000123456789")
    await ep.get_by_test_id("billing-routing").fill("011000015")
    await ep.get_by_test_id("billing-save").click()
    await expect(ep.get_by_test_id("billing-current")).to_contain_text("6789")
    await expect(ep.get_by_test_id("billing-current")).not_to_contain_text("000123456789")
    await expect(iban_error).to_be_hidden()

    await ep.get_by_test_id("address-line1").fill("1 Market St")
    await ep.get_by_test_id("address-city").fill("San Francisco")
    await ep.get_by_test_id("address-region").fill("CA")
    await ep.get_by_test_id("address-postal").fill("94105")
    await ep.get_by_test_id("address-country").select_option("US")
    await ep.get_by_test_id("address-save").click()
    await expect(ep.get_by_test_id("status-text")).to_contain_text("Address saved")

    # A W-9 needs a valid US taxpayer id.
    await ep.get_by_test_id("tax-form").select_option("W-9")
    await ep.get_by_test_id("tax-legal-name").fill("Erin Expert")
    await ep.get_by_test_id("tax-id").fill("000-00-0000")
    await ep.get_by_test_id("tax-save").click()
    tax_error = ep.locator("#" + await ep.get_by_test_id("tax-id").get_attribute("id") + "-err")
    await expect(tax_error).to_contain_text("W-9")
    await ep.get_by_test_id("tax-id").fill("12-3456789")
    await ep.get_by_test_id("tax-save").click()
    await expect(ep.get_by_test_id("payout-complete")).to_have_text("Complete")
    await expect(ep.get_by_test_id("tax-current")).to_contain_text("6789")


async def test_expert_page_and_a_direct_request_from_it(site: Site) -> None:
    expert = await site.expert("Erin Expert", skills=["unity", "shaders"], languages=["en", "de"])
    customer = await site.customer("Carl Customer")
    await ended_session(site, customer, expert, "Warm-up")
    await site.call(
        customer,
        "POST",
        "/api/sessions/"
        + (await site.call(customer, "GET", "/api/sessions"))["sessions"][0]["id"]
        + "/review",
        json={"stars": 5, "comment": "Knows URP inside out."},
    )
    ep = await site.signed_in(expert)

    # Anyone may read the page; a signed-in customer may ask directly.
    cp = await site.page()
    await cp.goto(f"{site.url}/#/experts/{expert.id}")
    await expect(cp.get_by_test_id("expert-name")).to_have_text("Erin Expert")
    await expect(cp.get_by_test_id("expert-rating")).to_have_text("5.0")
    await expect(cp.get_by_test_id("review")).to_contain_text("Knows URP inside out.")
    await expect(cp.get_by_test_id("expert-languages")).to_have_text("en, de")
    await expect(cp.get_by_test_id("request-form")).to_have_count(0)

    cp = await site.signed_in(customer, f"#/experts/{expert.id}")
    await expect(cp.get_by_test_id("req-skills")).to_have_value("unity, shaders")
    await cp.get_by_test_id("req-title").fill("Only you can fix this shader")
    await cp.get_by_test_id("req-submit").click()
    await expect(cp).to_have_url(f"{site.url}/#/ask")
    request = cp.get_by_test_id("request").filter(has_text="Only you can fix this shader")
    await expect(request).to_contain_text("Direct")
    offer = ep.get_by_test_id("offer").filter(has_text="Only you can fix this shader")
    await expect(offer).to_contain_text("Direct")
    await offer.get_by_test_id("offer-decline").click()
    await expect(request.get_by_test_id("request-status")).to_have_text("declined")
