// @ts-check
// Session History: All, or Under Dispute (?disputed=1); filter by status; "Load more" pages
// with the cursor; View Details, and the expert's Dispute on a session with an open claim.
// Managers see every session (optionally one user's).
import { h, add, tabBar, table, pager, field } from "../dom.js";
import { fmtShort, fmtMinSec, dollars, stars } from "../format.js";
import { claimPill } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const STATUSES = [["", "Any status"], ["ended", "Ended"], ["cancelled", "Cancelled"], ["active", "Active"], ["scheduled", "Scheduled"]];

/** When a session happened, as well as it is known. @param {any} s */
export const sessionWhen = (s) => s.ended_at || s.started_at || s.scheduled_at || s.created_at;

/** @param {HTMLElement} root @param {{tab?: string, query: URLSearchParams}} params @param {Ctx} ctx */
export function mount(root, params, ctx) {
  const role = ctx.role();
  const tab = params.tab === "disputed" ? "disputed" : "all";
  const status = /** @type {HTMLSelectElement} */ (h("select", { testid: "history-status" },
    STATUSES.map(([v, label]) => h("option", { value: v, selected: (params.query.get("status") || "") === v }, label))));
  const userId = /** @type {HTMLInputElement} */ (h("input", { type: "text", placeholder: "any user", testid: "history-user",
    value: params.query.get("user_id") || "" }));
  const tabs = tabBar([
    { name: "all", label: "All", testid: "history-tab-all" },
    { name: "disputed", label: "Under Dispute", testid: "history-tab-disputed" },
  ], tab, (name) => ctx.navigate(name === "disputed" ? "#/history/disputed" : "#/history"), "Session history");

  /** @type {{label: string, cell: (s: any) => any, num?: boolean, date?: boolean}[]} */
  const columns = [
    { label: "Date", date: true, cell: (s) => fmtShort(sessionWhen(s)) },
    { label: "Session", cell: (s) => h("span", { testid: "history-title" }, s.title) },
  ];
  if (role === "manager") {
    columns.push({ label: "Customer", cell: (s) => s.customer && s.customer.name }, { label: "Expert", cell: (s) => s.expert && s.expert.name });
  } else {
    columns.push({ label: role === "expert" ? "Customer" : "Expert", cell: (s) => { const o = role === "expert" ? s.customer : s.expert; return o && o.name; } });
  }
  columns.push(
    { label: "Status", cell: (s) => h("span", { class: "pill " + s.status, testid: "history-status-cell" }, s.status) },
    { label: "Billable", num: true, cell: (s) => s.summary ? fmtMinSec(s.summary.billable_seconds) : "—" },
    { label: "Charge", num: true, cell: (s) => s.summary ? dollars(s.summary.charge_cents) : "—" },
  );
  if (role === "expert") columns.push({ label: "Earnings", num: true, cell: (s) => s.summary ? dollars(s.summary.expert_earnings_cents) : "—" });
  columns.push(
    { label: "Claim", cell: (s) => claimPill(s.claim) || h("span", { class: "muted" }, "—") },
    { label: "Review", cell: (s) => s.review ? h("span", { class: "stars", title: `${s.review.stars} of 5` }, stars(s.review.stars)) : h("span", { class: "muted" }, "—") },
    { label: "", cell: (s) => h("div", { class: "actions-cell" },
      h("a", { class: "button", href: "#/sessions/" + encodeURIComponent(s.id), testid: "view-details" }, "View Details"),
      role === "expert" && s.claim && s.claim.status === "open"
        ? h("a", { class: "button danger", href: `#/sessions/${encodeURIComponent(s.id)}?dispute=1`, testid: "history-dispute" }, "Dispute") : null) },
  );
  const t = table(columns, { testid: "history-table", rowTestid: "history-row",
    empty: tab === "disputed" ? "No sessions with a refund claim." : "No sessions yet." });
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/sessions", {
      status: status.value, disputed: tab === "disputed" ? 1 : null, cursor, limit: 20,
      user_id: role === "manager" ? userId.value.trim() : null,
    });
    return { items: r.sessions || [], next: r.next_cursor };
  }, (items) => t.add(items), { testid: "history-more" });

  const filters = h("form", { class: "row filters", testid: "history-filters" },
    field("Status", status).el,
    role === "manager" ? field("User id", userId).el : null,
    h("button", { type: "submit", testid: "history-apply" }, "Apply"));
  filters.addEventListener("submit", (e) => { e.preventDefault(); reload(); });
  status.addEventListener("change", reload);

  function reload() { t.clear(); p.first(); }

  add(root, h("h2", {}, "Session History"),
    tabs.bar,
    tab === "disputed" ? h("p", { class: "muted small" }, role === "expert"
      ? "Sessions with a refund claim: the ones you disputed, and the ones waiting for your answer. A community manager reviews every claim."
      : "Sessions with a refund claim, and where each claim stands.") : null,
    filters, t.el, p.el);
  reload();
  return { refresh: reload };
}
