// @ts-check
// View Details of one session: participants, times, billable time, charge, discount and
// earnings, the refund claim (Claim a refund / Dispute), the review (Rate this session), the
// transcript page by page, code snippets, attachments, recordings and the ledger rows.
import { h, fill, dl, pill, showError, table } from "../dom.js";
import { fmtTime, fmtShort, fmtMinSec, dollars, KIND_TEXT, signedDollars } from "../format.js";
import { attachmentLink, claimBox, reviewBox, transcriptPager } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/** @param {HTMLElement} root @param {{id: string, query: URLSearchParams}} params @param {Ctx} ctx */
export function mount(root, params, ctx) {
  const id = params.id;
  const role = ctx.role();
  let wantDispute = params.query.get("dispute") === "1";
  const body = h("div", { testid: "session-details" }, h("p", { class: "muted" }, "Loading…"));
  root.append(body);

  /** A participant; the expert links to his public profile. @param {any} p @param {boolean} expert */
  const person = (p, expert) => !p ? "?" : expert
    ? h("a", { href: "#/experts/" + encodeURIComponent(p.id), testid: "details-expert" }, p.name || p.id) : p.name || p.id;

  async function load() {
    let session;
    try {
      session = (await ctx.api.get("/api/sessions/" + encodeURIComponent(id))).session;
    } catch (err) {
      fill(body, h("p", { class: "empty" }, /** @type {any} */ (err).status === 404 ? "No such session." : "The session could not be loaded."));
      showError(/** @type {any} */ (err), "Loading the session");
      return;
    }
    render(session);
  }

  /** @param {any} s */
  function render(s) {
    const sum = s.summary;
    /** @type {[string, any][]} */
    const money = [
      ["Rate", `${dollars(s.rate_cents_per_15min || 0)} / 15 min`],
      ["Billable time", sum ? fmtMinSec(sum.billable_seconds) : "—"],
      ["Charge", sum ? h("span", { testid: "details-charge" }, dollars(sum.charge_cents)) : "—"],
      ["Discount", sum ? `${sum.discount_pct} %` : "—"],
    ];
    if (role !== "customer" && sum) money.push(["Expert earnings", h("span", { testid: "details-earnings" }, dollars(sum.expert_earnings_cents))]);
    if (role === "manager" && sum) money.push(["Platform fee", dollars(sum.platform_fee_cents || 0)]);
    if (s.cancellation) money.push(["Cancellation", `${s.cancellation.reason.replace("_", "-")}; fee ${dollars(s.cancellation.fee_cents)}`]);

    const transcript = transcriptPager(ctx, id);
    const snippets = s.code_snippets || [];
    const attachments = s.attachments || [];
    const recordings = s.recordings || [];
    const ledger = s.ledger || [];
    const lt = table([
      { label: "Kind", cell: (/** @type {any} */ r) => KIND_TEXT[r.kind] || r.kind },
      { label: "Account", cell: (/** @type {any} */ r) => r.account || "" },
      { label: "Amount", num: true, cell: (/** @type {any} */ r) => signedDollars(r.amount_cents) },
      { label: "At", date: true, cell: (/** @type {any} */ r) => fmtShort(r.at) },
    ], { testid: "details-ledger", empty: "No money moved." });
    lt.add(ledger);

    fill(body,
      h("article", { class: "card" },
        h("div", { class: "card-head" },
          h("a", { href: role === "manager" ? "#/manager/claims" : "#/history", class: "button", testid: "details-back" }, "← Session History"),
          h("h2", { testid: "details-title" }, s.title),
          pill(s.status, undefined, "details-status"),
          s.status === "active" && role !== "manager" ? h("button", { class: "primary", type: "button", testid: "details-open-room",
            onclick: () => ctx.navigate("#/room/" + s.id) }, "Open room") : null),
        h("div", { class: "grid2" },
          dl([
            ["Customer", person(s.customer, false)],
            ["Expert", person(s.expert, true)],
            ["Kind", s.kind],
            ["Requested", fmtTime(s.created_at)],
            ["Scheduled for", s.scheduled_at ? fmtTime(s.scheduled_at) : null],
            ["Started", s.started_at ? fmtTime(s.started_at) : "—"],
            ["Ended", s.ended_at ? fmtTime(s.ended_at) : "—"],
          ], "details-people"),
          dl(money, "details-money"))),
      h("div", { class: "grid2" }, claimBox(ctx, s, load), reviewBox(ctx, s, load)),
      h("section", { class: "card", "aria-label": "Transcript" }, h("h3", {}, "Chat transcript"), transcript.el),
      h("div", { class: "grid2" },
        h("section", { class: "card", "aria-label": "Code snippets", testid: "details-snippets" }, h("h3", {}, "Code snippets"),
          snippets.length ? snippets.map((/** @type {any} */ c) => h("figure", { class: "msg-code" },
            h("figcaption", {}, `${c.language || "code"} · ${c.from ? c.from.name : ""} · ${fmtTime(c.at)}`),
            h("pre", {}, h("code", {}, c.source)))) : h("p", { class: "muted" }, "No code snippets.")),
        h("section", { class: "card", "aria-label": "Files" },
          h("h3", {}, "Attachments"),
          h("ul", { class: "files", testid: "details-attachments" }, attachments.length
            ? attachments.map((/** @type {any} */ a) => h("li", {}, attachmentLink(ctx, a))) : h("li", { class: "muted" }, "No attachments.")),
          h("h3", {}, "Recordings"),
          h("ul", { class: "files", testid: "details-recordings" }, recordings.length
            ? recordings.map((/** @type {any} */ a) => h("li", {}, attachmentLink(ctx, a))) : h("li", { class: "muted" }, "No recordings.")))),
      ledger.length ? h("section", { class: "card", "aria-label": "Ledger" }, h("h3", {}, "Money movements"), lt.el) : null);
    transcript.load();
    if (wantDispute) {
      wantDispute = false;
      const open = /** @type {HTMLButtonElement|null} */ (body.querySelector('[data-testid="dispute-open"]'));
      if (open) open.click();
    }
  }

  load();
  return { refresh: load };
}
