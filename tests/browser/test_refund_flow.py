"""After a session: the customer claims a refund, the expert disputes it, a manager decides;
the expert's earnings and transaction record show the refund. All in the browser."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site
from tests.browser.helpers import ended_session

pytestmark = pytest.mark.timeout(300)


def usd(cents: int) -> str:
    """As the pages write money: $1,234.56, and a minus sign (U+2212) before a debit."""
    sign = "\N{MINUS SIGN}" if cents < 0 else ""
    d, c = divmod(abs(cents), 100)
    return f"{sign}${d:,}.{c:02d}"


async def test_claim_dispute_and_refund_decision(site: Site) -> None:
    expert = await site.expert("Erin Expert")
    customer = await site.customer("Carl Customer")
    manager = await site.manager()
    session = await ended_session(
        site,
        customer,
        expert,
        "Lightmap baking takes hours",
        chat=(("customer", "Baking takes 4 hours."), ("expert", "Try progressive GPU.")),
    )
    sid = session["id"]
    charge = session["summary"]["charge_cents"]

    # The customer claims a refund on the session's details page.
    cp = await site.signed_in(customer, f"#/sessions/{sid}")
    await expect(cp.get_by_test_id("details-title")).to_have_text("Lightmap baking takes hours")
    await cp.get_by_test_id("refund-open").click()
    await cp.get_by_test_id("refund-reason").fill("The expert's advice did not help at all.")
    await cp.get_by_test_id("refund-submit").click()
    await expect(cp.get_by_test_id("claim-status")).to_have_text("Refund claimed")
    await expect(cp.get_by_test_id("claim-details")).to_contain_text(usd(charge))
    # The customer rates it too.
    await cp.get_by_test_id("rate-2").check()
    await cp.get_by_test_id("rate-comment").fill("Friendly, but it did not work.")
    await cp.get_by_test_id("rate-submit").click()
    await expect(cp.get_by_test_id("review-stars")).to_have_text("★★☆☆☆")

    # The expert sees the claim in Session History and disputes it.
    ep = await site.signed_in(expert, "#/history")
    row = ep.get_by_test_id("history-row").filter(has_text="Lightmap baking takes hours")
    await expect(row.get_by_test_id("claim-status")).to_have_text("Refund claimed")
    await row.get_by_test_id("history-dispute").click()
    await expect(ep.get_by_test_id("dispute-form")).to_be_visible()
    await ep.get_by_test_id("dispute-summary").fill(
        "I found the cause (a 4k lightmap resolution); baking took 6 minutes after the fix."
    )
    await ep.get_by_test_id("dispute-submit").click()
    await expect(ep.get_by_test_id("claim-status")).to_have_text("Under dispute")
    # The customer's open page follows (claim.update): the expert disputed.
    await expect(cp.get_by_test_id("claim-status")).to_have_text("Under dispute")
    await expect(cp.get_by_test_id("claim-details")).to_contain_text("4k lightmap resolution")
    # Under Dispute lists it.
    await ep.get_by_test_id("nav-history").click()
    await ep.get_by_test_id("history-tab-disputed").click()
    await expect(ep.get_by_test_id("history-row")).to_have_count(1)
    await expect(ep.get_by_test_id("history-row")).to_contain_text("Under dispute")

    # The manager decides in the console, with the transcript at hand: refund.
    mp = await site.signed_in(manager)
    card = mp.get_by_test_id("claim-card").filter(has_text="Lightmap baking takes hours")
    await expect(card.get_by_test_id("claim-reason")).to_have_text(
        "The expert's advice did not help at all."
    )
    await expect(card.get_by_test_id("claim-dispute")).to_contain_text("4k lightmap resolution")
    await card.get_by_test_id("claim-transcript").click()
    await expect(card.get_by_test_id("transcript")).to_contain_text("Try progressive GPU.")
    await card.get_by_test_id("decision-note").fill("The advice came too late to help.")
    await card.get_by_test_id("decide-refund").click()
    await expect(card.get_by_test_id("decision-result")).to_have_text("Decided: Refunded.")
    await expect(mp.get_by_test_id("claims-empty")).to_be_visible()

    # Both sides' pages follow; the audit log has the decision.
    await expect(cp.get_by_test_id("claim-status")).to_have_text("Refunded")
    await expect(ep.get_by_test_id("history-row")).to_contain_text("Refunded")
    await mp.get_by_test_id("manager-tab-audit").click()
    await expect(mp.get_by_test_id("audit-row").first).to_be_visible()
    await expect(mp.get_by_test_id("audit-table")).to_contain_text("claim")

    claim = (await site.call(customer, "GET", f"/api/sessions/{sid}"))["session"]["claim"]
    assert claim["status"] == "refunded"
    assert claim["outcome"] == "refund"
    assert claim["note"] == "The advice came too late to help."


async def test_earnings_and_transaction_record_show_the_refund(site: Site, tmp_path: Path) -> None:
    expert = await site.expert("Erin Expert")
    customer = await site.customer("Carl Customer")
    manager = await site.manager()
    kept = await ended_session(site, customer, expert, "Physics jitter")
    refunded = await ended_session(site, customer, expert, "NavMesh holes")
    claim = (
        await site.call(
            customer,
            "POST",
            f"/api/sessions/{refunded['id']}/refund-claim",
            json={"reason": "Not solved."},
        )
    )["claim"]
    await site.call(
        manager, "POST", f"/api/claims/{claim['id']}/decision", json={"outcome": "refund"}
    )
    earned = [s["summary"]["expert_earnings_cents"] for s in (kept, refunded)]
    gross = kept["summary"]["charge_cents"] + refunded["summary"]["charge_cents"]
    reversal = -refunded["summary"]["expert_earnings_cents"]
    (line,) = (await site.call(expert, "GET", "/api/me/statements"))["months"]
    assert line["gross_cents"] == gross
    assert line["net_cents"] == earned[0]

    ep = await site.signed_in(expert, "#/earnings")
    # My Earnings: this month's line has the gross, the refund, the fees and the net.
    month = ep.get_by_test_id("month-row").first
    await expect(month.get_by_test_id("m-gross")).to_have_text(usd(gross))
    await expect(month.get_by_test_id("m-refunds")).to_have_text(usd(line["refunds_cents"]))
    await expect(month.get_by_test_id("m-fees")).to_have_text(usd(line["platform_fees_cents"]))
    await expect(month.get_by_test_id("m-net")).to_have_text(usd(earned[0]))
    assert line["refunds_cents"] < 0
    await expect(ep.get_by_test_id("balance")).to_have_text(usd(earned[0]))

    # Session Summary: two sessions, one refund claim, one refunded.
    await ep.get_by_test_id("earnings-tab-summary").click()
    summary = ep.get_by_test_id("summary-row").first
    await expect(summary.get_by_test_id("s-sessions")).to_have_text("2")
    await expect(summary.get_by_test_id("s-claims")).to_have_text("1")
    await expect(summary.get_by_test_id("s-refunded")).to_have_text("1")

    # Transaction Record: newest first, the refund on top, with the running balance.
    await ep.get_by_test_id("earnings-tab-transactions").click()
    rows = ep.get_by_test_id("tx-row")
    await expect(rows).to_have_count(3)
    await expect(rows.nth(0).get_by_test_id("tx-kind")).to_have_text(
        "Refund (taken back from earnings)"
    )
    await expect(rows.nth(0).get_by_test_id("tx-amount")).to_have_text(usd(reversal))
    await expect(rows.nth(0).get_by_test_id("tx-balance")).to_have_text(usd(earned[0]))
    await expect(rows.nth(1).get_by_test_id("tx-kind")).to_have_text("Session earnings")
    await expect(rows.nth(1).get_by_test_id("tx-balance")).to_have_text(usd(sum(earned)))

    # Download CSV: fetched with the bearer token and saved as a file.
    async with ep.expect_download() as info:
        await ep.get_by_test_id("transactions-csv").click()
    download = await info.value
    saved = tmp_path / "transactions.csv"
    await download.save_as(saved)
    lines = list(csv.reader(io.StringIO(saved.read_text())))
    assert len(lines) == 4  # the header and three rows
    assert any("refund_reversal" in cell for cell in lines[1])

    # The customer's receipts show the refund; his transaction record has it too.
    cp = await site.signed_in(customer, "#/receipts")
    refunded_row = cp.get_by_test_id("receipt-row").filter(has_text="NavMesh holes")
    await expect(refunded_row.get_by_test_id("receipt-refund")).to_have_text(
        usd(refunded["summary"]["charge_cents"])
    )
    await expect(refunded_row.get_by_test_id("receipt-paid")).to_have_text(usd(0))
    await cp.get_by_test_id("receipts-transactions").click()
    await expect(cp.get_by_test_id("tx-row").first.get_by_test_id("tx-kind")).to_have_text("Refund")
