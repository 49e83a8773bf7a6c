// @ts-check
// My Earnings, in three tabs: My Earnings (per month: gross, platform fees, refunds,
// adjustments, net, payouts), Session Summary (sessions, refund claims, refunds per month)
// and Transaction Record (every ledger row, newest first, with the running balance; Load
// more; Download CSV). A customer sees the same for his spending; his "Transactions" page is
// the Transaction Record tab.
import { h, fill, tabBar, table, pager, showError, saveBlob, pill } from "../dom.js";
import { fmtShort, fmtMonth, fmtMinSec, dollars, signedDollars, KIND_TEXT } from "../format.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/**
 * The Transaction Record: a table read page by page, and the CSV of every row.
 * @param {Ctx} ctx
 */
export function transactionRecord(ctx) {
  const t = table([
    { label: "Date", date: true, cell: (/** @type {any} */ r) => fmtShort(r.at) },
    { label: "Session", cell: (/** @type {any} */ r) => r.session_id
      ? h("a", { href: "#/sessions/" + encodeURIComponent(r.session_id) }, r.session_title || r.session_id) : "—" },
    { label: "Transaction", cell: (/** @type {any} */ r) => h("span", { testid: "tx-kind" }, KIND_TEXT[r.kind] || r.kind) },
    { label: "Details", cell: (/** @type {any} */ r) => h("span", { class: "muted small" }, r.memo || "") },
    { label: "Amount", num: true, cell: (/** @type {any} */ r) => h("span", { class: r.amount_cents < 0 ? "neg" : "pos", testid: "tx-amount" }, signedDollars(r.amount_cents)) },
    { label: "Balance", num: true, cell: (/** @type {any} */ r) => h("span", { testid: "tx-balance" }, dollars(r.balance_cents)) },
  ], { testid: "transactions-table", rowTestid: "tx-row", empty: "No transactions yet." });
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/me/transactions", { cursor, limit: 25 });
    return { items: r.transactions || [], next: r.next_cursor };
  }, (items) => t.add(items), { testid: "transactions-more" });
  const csv = /** @type {HTMLButtonElement} */ (h("button", { type: "button", testid: "transactions-csv" }, "Download CSV"));
  csv.addEventListener("click", async () => {
    csv.disabled = true;
    try {
      const blob = await ctx.api.fetchBlob("/api/me/transactions", { format: "csv" });
      saveBlob(blob, `transactions-${new Date().toISOString().slice(0, 10)}.csv`);
    } catch (err) { showError(/** @type {any} */ (err), "Downloading the CSV"); }
    finally { csv.disabled = false; }
  });
  const el = h("section", { "aria-label": "Transaction Record" },
    h("div", { class: "card-head" }, h("h3", {}, "Transaction Record"), csv),
    h("p", { class: "muted small" }, "Every transaction of your account, newest first, with your balance after each."),
    t.el, p.el);
  return { el, load() { t.clear(); return p.first(); } };
}

/** @param {HTMLElement} root @param {{tab?: string}} params @param {Ctx} ctx */
export function mount(root, params, ctx) {
  const expert = ctx.role() === "expert";
  const tab = params.tab === "summary" || params.tab === "transactions" ? params.tab : "earnings";
  const base = expert ? "#/earnings" : "#/transactions";
  const tabs = tabBar([
    { name: "earnings", label: expert ? "My Earnings" : "My Spending", testid: "earnings-tab-earnings" },
    { name: "summary", label: "Session Summary", testid: "earnings-tab-summary" },
    { name: "transactions", label: "Transaction Record", testid: "earnings-tab-transactions" },
  ], tab, (name) => ctx.navigate(`${base}/${name}`), "Earnings");
  const head = h("div", { class: "balance card row", testid: "earnings-balance" }, h("span", { class: "muted" }, "Loading…"));
  const panel = h("div", { role: "tabpanel" });
  const thisYear = new Date().getUTCFullYear();
  const year = /** @type {HTMLSelectElement} */ (h("select", { testid: "earnings-year", "aria-label": "Year" },
    h("option", { value: "" }, "Every month"),
    [0, 1, 2].map((d) => h("option", { value: String(thisYear - d) }, String(thisYear - d)))));
  year.addEventListener("change", () => load());
  root.append(h("h2", {}, expert ? "My Earnings" : "My Spending"),
    h("p", { class: "muted small" }, "All values are in USD; months are UTC."),
    head, tabs.bar, panel);

  /** @param {any} st */
  function balance(st) {
    fill(head,
      h("div", {}, h("div", { class: "muted small" }, expert ? "Balance not paid out yet" : "Account balance"),
        h("div", { class: "big", testid: "balance" }, dollars(st.balance_cents))),
      h("span", { class: "spacer" }),
      tab !== "transactions" ? h("label", { class: "inline" }, "Show ", year) : null);
  }

  async function loadProfileStatus(/** @type {HTMLElement} */ box) {
    try {
      const [{ profile }, { payouts }] = await Promise.all([ctx.api.get("/api/me/payout-profile"), ctx.api.get("/api/me/payouts")]);
      const pt = table([
        { label: "Period", cell: (/** @type {any} */ p) => fmtMonth(p.period) },
        { label: "Amount", num: true, cell: (/** @type {any} */ p) => dollars(p.amount_cents) },
        { label: "Sent", date: true, cell: (/** @type {any} */ p) => fmtShort(p.created_at) },
      ], { testid: "payouts-table", empty: "No payouts yet." });
      pt.add(payouts || []);
      fill(box,
        h("div", { class: "card-head" }, h("h3", {}, "Payouts"),
          profile.complete ? pill("complete", "Payout profile complete") : pill("incomplete", "Payout profile incomplete"),
          h("a", { href: "#/payout", class: "button", testid: "earnings-payout-link" }, profile.complete ? "Payout profile" : "Complete your payout profile")),
        profile.complete ? null : h("p", { class: "notice" }, "You are paid out only once your payout profile is complete. Missing: ",
          (profile.missing || []).join(", "), "."),
        pt.el);
    } catch (err) { showError(/** @type {any} */ (err), "Loading payouts"); }
  }

  async function load() {
    if (tab === "transactions") {
      const rec = transactionRecord(ctx);
      fill(panel, rec.el);
      try { balance(await ctx.api.get("/api/me/statements")); } catch (err) { showError(/** @type {any} */ (err), "Loading the balance"); }
      await rec.load();
      return;
    }
    let st;
    try { st = await ctx.api.get("/api/me/statements", { year: year.value }); }
    catch (err) { showError(/** @type {any} */ (err), "Loading the statement"); return; }
    balance(st);
    const months = st.months || [];
    if (tab === "earnings") {
      /** @type {{label: string, cell: (m: any) => any, num?: boolean}[]} */
      const cols = [
        { label: "Month", cell: (m) => h("span", { testid: "month" }, fmtMonth(m.month)) },
        { label: expert ? "Gross" : "Charges", num: true, cell: (m) => h("span", { testid: "m-gross" }, dollars(m.gross_cents)) },
        { label: "Platform fees", num: true, cell: (m) => h("span", { testid: "m-fees" }, dollars(m.platform_fees_cents)) },
        { label: "Refunds", num: true, cell: (m) => h("span", { testid: "m-refunds" }, dollars(m.refunds_cents)) },
        { label: "Adjustments", num: true, cell: (m) => h("span", { testid: "m-adjustments" }, dollars(m.adjustments_cents)) },
        { label: "Net", num: true, cell: (m) => h("strong", { testid: "m-net" }, dollars(m.net_cents)) },
      ];
      if (expert) cols.push({ label: "Payouts", num: true, cell: (m) => h("span", { testid: "m-payouts" }, dollars(m.payouts_cents)) });
      const t = table(cols, { testid: "earnings-table", rowTestid: "month-row", empty: "No earnings yet." });
      t.add(months);
      const payouts = h("section", { class: "card", testid: "earnings-payouts" });
      fill(panel, h("section", { "aria-label": "By month" }, h("h3", {}, expert ? "Earnings by month" : "Spending by month"), t.el),
        expert ? payouts : null);
      if (expert) loadProfileStatus(payouts);
    } else {
      const t = table([
        { label: "Month", cell: (m) => fmtMonth(m.month) },
        { label: "Sessions", num: true, cell: (m) => h("span", { testid: "s-sessions" }, String(m.sessions)) },
        { label: "Billable time", num: true, cell: (m) => fmtMinSec(m.billable_seconds) },
        { label: "Refund claims", num: true, cell: (m) => h("span", { testid: "s-claims" }, String(m.refund_claims)) },
        { label: "Refunded sessions", num: true, cell: (m) => h("span", { testid: "s-refunded" }, String(m.refunded_sessions)) },
        { label: "Refunds", num: true, cell: (m) => h("span", { testid: "s-refunds" }, dollars(m.refunds_cents)) },
      ], { testid: "summary-table", rowTestid: "summary-row", empty: "No sessions yet." });
      t.add(months);
      fill(panel, h("section", { "aria-label": "Session Summary" }, h("h3", {}, "Session Summary"), t.el));
    }
  }
  load();
  return { refresh: load };
}
