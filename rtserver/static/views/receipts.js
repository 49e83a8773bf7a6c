// @ts-check
// The customer's receipts: his ended and cancelled sessions with what each cost (charge,
// discount, refund, cancellation fee). His Transaction Record is the earnings view's tab.
import { h, table, pager } from "../dom.js";
import { fmtShort, fmtMinSec, dollars } from "../format.js";
import { claimPill } from "./parts.js";
import { sessionWhen } from "./history.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const REFUNDED = new Set(["refunded", "no_fault"]);

/** What the customer got back. @param {any} s */
const refundOf = (s) => (s.claim && REFUNDED.has(s.claim.status) ? s.claim.amount_cents : 0);

/** What the customer paid in the end. @param {any} s @param {string} me */
function paid(s, me) {
  if (s.summary) return s.summary.charge_cents - refundOf(s);
  const c = s.cancellation;
  return c && c.charged_user_id === me ? c.fee_cents : 0;
}

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const me = ctx.me().id;
  const t = table([
    { label: "Date", date: true, cell: (/** @type {any} */ s) => fmtShort(sessionWhen(s)) },
    { label: "Session", cell: (/** @type {any} */ s) => h("a", { href: "#/sessions/" + encodeURIComponent(s.id), testid: "receipt-title" }, s.title) },
    { label: "Expert", cell: (/** @type {any} */ s) => s.expert && s.expert.name },
    { label: "Billable", num: true, cell: (/** @type {any} */ s) => s.summary ? fmtMinSec(s.summary.billable_seconds) : "—" },
    { label: "Charge", num: true, cell: (/** @type {any} */ s) => s.summary ? h("span", { testid: "receipt-charge" }, dollars(s.summary.charge_cents)) : "—" },
    { label: "Discount", num: true, cell: (/** @type {any} */ s) => s.summary ? `${s.summary.discount_pct} %` : "—" },
    { label: "Refund", num: true, cell: (/** @type {any} */ s) => refundOf(s) ? h("span", { class: "pos", testid: "receipt-refund" }, dollars(refundOf(s))) : claimPill(s.claim) || "—" },
    { label: "Cancellation fee", num: true, cell: (/** @type {any} */ s) => s.cancellation && s.cancellation.charged_user_id === me ? dollars(s.cancellation.fee_cents) : "—" },
    { label: "You paid", num: true, cell: (/** @type {any} */ s) => h("strong", { testid: "receipt-paid" }, dollars(paid(s, me))) },
  ], { testid: "receipts-table", rowTestid: "receipt-row", empty: "No receipts yet." });
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/sessions", { status: "ended,cancelled", cursor, limit: 20 });
    return { items: r.sessions || [], next: r.next_cursor };
  }, (items) => t.add(items), { testid: "receipts-more" });
  root.append(h("h2", {}, "Receipts"),
    h("p", { class: "muted small" }, "What each session cost you. Every movement of money is in your ",
      h("a", { href: "#/transactions/transactions", testid: "receipts-transactions" }, "Transaction Record"), "."),
    t.el, p.el);
  const reload = () => { t.clear(); return p.first(); };
  reload();
  return { refresh: reload };
}
