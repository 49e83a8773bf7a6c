// @ts-check
// The manager console: the claims queue (oldest first, the transcript at hand, and the three
// decisions refund / deny / no fault), experts and their verification, users (suspend,
// restore), the audit log, the monthly payout run, and the dead letters (retry one).
import { h, fill, field, tabBar, table, pager, pill, showError, showStatus, dl } from "../dom.js";
import { fmtTime, fmtShort, fmtMonth, dollars, lastMonth, CLAIM_TEXT } from "../format.js";
import { IdempotentAction } from "../api.js";
import { claimPill, transcriptPager } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const OUTCOMES = [
  { outcome: "refund", label: "Refund", hint: "the customer is refunded; the expert's earnings and the platform fee are taken back", cls: "primary" },
  { outcome: "deny", label: "Deny", hint: "nothing is refunded", cls: "" },
  { outcome: "no_fault", label: "No fault", hint: "the platform refunds the customer; the expert keeps his earnings", cls: "" },
];

// ---------- claims ---------------------------------------------------------------------

/** @param {Ctx} ctx @param {any} claim @param {() => void} onDecided */
function claimCard(ctx, claim, onDecided) {
  const once = new IdempotentAction();
  const note = /** @type {HTMLTextAreaElement} */ (h("textarea", { maxlength: "2000", placeholder: "Why (both sides are told)", testid: "decision-note" }));
  const result = h("p", { class: "outcome", role: "status", testid: "decision-result", hidden: true });
  const transcriptBox = h("div", { class: "claim-transcript", hidden: true });
  let transcriptLoaded = false;
  const showTranscript = h("button", { type: "button", testid: "claim-transcript" }, "Show transcript");
  showTranscript.addEventListener("click", () => {
    transcriptBox.hidden = !transcriptBox.hidden;
    showTranscript.textContent = transcriptBox.hidden ? "Show transcript" : "Hide transcript";
    if (!transcriptLoaded) {
      transcriptLoaded = true;
      const t = transcriptPager(ctx, claim.session_id);
      transcriptBox.append(t.el);
      t.load();
    }
  });
  const open = claim.status === "open" || claim.status === "disputed";
  const buttons = OUTCOMES.map((o) => h("button", { type: "button", class: o.cls, title: o.hint, testid: "decide-" + o.outcome,
    disabled: !open, onclick: () => decide(o.outcome) }, o.label));
  /** @param {string} outcome */
  async function decide(outcome) {
    /** @type {Record<string, any>} */
    const body = { outcome };
    if (note.value.trim()) body.note = note.value.trim();
    for (const b of buttons) /** @type {HTMLButtonElement} */ (b).disabled = true;
    try {
      const r = await ctx.api.post(`/api/claims/${encodeURIComponent(claim.id)}/decision`, body, once.keyFor(body));
      result.textContent = `Decided: ${CLAIM_TEXT[r.claim.status] || r.claim.status}.`;
      result.hidden = false;
      showStatus(`Claim on “${claim.session_title}” decided: ${outcome.replace("_", " ")}.`);
      setTimeout(onDecided, 1500);
    } catch (err) {
      showError(/** @type {any} */ (err), "Decision");
      for (const b of buttons) /** @type {HTMLButtonElement} */ (b).disabled = false;
    }
  }
  return h("article", { class: "card claim", testid: "claim-card" },
    h("div", { class: "card-head" },
      h("h3", {}, h("a", { href: "#/sessions/" + encodeURIComponent(claim.session_id), testid: "claim-session" }, claim.session_title || claim.session_id)),
      claimPill(claim), h("span", { class: "big", testid: "claim-amount" }, dollars(claim.amount_cents))),
    dl([
      ["Customer", claim.customer ? claim.customer.name : "?"],
      ["Expert", claim.expert ? h("a", { href: "#/experts/" + encodeURIComponent(claim.expert.id) }, claim.expert.name) : "?"],
      ["Claimed", fmtTime(claim.created_at)],
      ["Customer's reason", h("span", { testid: "claim-reason" }, claim.reason)],
      ["Expert's dispute", claim.dispute_summary ? h("span", { testid: "claim-dispute" }, claim.dispute_summary) : h("span", { class: "muted" }, "not disputed")],
      ["Decision", claim.outcome ? `${claim.outcome.replace("_", " ")}${claim.decided_by ? " by " + claim.decided_by.name : ""}, ${fmtTime(claim.decided_at)}` : null],
      ["Note", claim.note || null],
    ]),
    h("div", { class: "row" }, showTranscript), transcriptBox,
    open ? [field("Note", note, { hint: "optional" }).el, h("div", { class: "row actions" }, buttons),
      h("p", { class: "hint" }, "Refund: the expert pays it back. No fault: the platform pays it. Deny: nothing moves.")] : null,
    result);
}

/** @param {Ctx} ctx @param {HTMLElement} panel */
function claimsTab(ctx, panel) {
  const status = /** @type {HTMLSelectElement} */ (h("select", { testid: "claims-status" },
    h("option", { value: "open,disputed" }, "Waiting for a decision"),
    h("option", { value: "disputed" }, "Disputed"),
    h("option", { value: "open" }, "Not disputed"),
    h("option", { value: "refunded,denied,no_fault" }, "Decided")));
  const list = h("div", { testid: "claims-queue" });
  const empty = h("p", { class: "empty", hidden: true, testid: "claims-empty" }, "The queue is empty.");
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/claims", { status: status.value, cursor, limit: 10 });
    return { items: r.claims || [], next: r.next_cursor };
  }, (items) => {
    for (const c of items) list.append(claimCard(ctx, c, reload));
    empty.hidden = list.children.length > 0;
  }, { testid: "claims-more" });
  function reload() { list.replaceChildren(); empty.hidden = true; p.first(); }
  status.addEventListener("change", reload);
  fill(panel, h("div", { class: "row filters" }, field("Show", status).el),
    h("p", { class: "muted small" }, "Oldest first. Read both sides and the transcript, then decide."), list, empty, p.el);
  reload();
  return reload;
}

// ---------- experts and users ------------------------------------------------------------

/** @param {Ctx} ctx @param {HTMLElement} panel @param {boolean} expertsOnly */
function usersTab(ctx, panel, expertsOnly) {
  const q = /** @type {HTMLInputElement} */ (h("input", { type: "search", placeholder: "name or e-mail", testid: "users-q" }));
  const role = /** @type {HTMLSelectElement} */ (h("select", { testid: "users-role" },
    h("option", { value: "" }, "Any role"), ["customer", "expert", "manager"].map((r) => h("option", { value: r }, r))));
  const status = /** @type {HTMLSelectElement} */ (h("select", { testid: "users-status" },
    h("option", { value: "" }, "Any status"), h("option", { value: "active" }, "active"), h("option", { value: "suspended" }, "suspended")));

  /** @param {any} u */
  function verificationCell(u) {
    if (u.role !== "expert") return h("span", { class: "muted" }, "—");
    const sel = /** @type {HTMLSelectElement} */ (h("select", { testid: "verification-select", "aria-label": `Verification of ${u.name}` },
      ["pending", "verified", "rejected"].map((v) => h("option", { value: v, selected: u.verification_status === v }, v))));
    sel.addEventListener("change", async () => {
      sel.disabled = true;
      try {
        const r = await ctx.api.put(`/api/experts/${encodeURIComponent(u.id)}/verification`, { status: sel.value });
        u.verification_status = r.expert ? r.expert.verification_status : sel.value;
        showStatus(`${u.name} is now ${u.verification_status}.`);
      } catch (err) {
        sel.value = u.verification_status;
        showError(/** @type {any} */ (err), "Verification");
      } finally { sel.disabled = false; }
    });
    return sel;
  }

  /** @param {any} u */
  function actionsCell(u) {
    const box = h("div", { class: "row nowrap" });
    const render = () => {
      if (u.id === ctx.me().id) { fill(box, h("span", { class: "muted small" }, "you")); return; }
      if (u.status === "suspended") {
        fill(box, h("button", { type: "button", testid: "user-restore", onclick: () => act("restore", "") }, "Restore"));
        return;
      }
      const reason = /** @type {HTMLInputElement} */ (h("input", { type: "text", placeholder: "reason", class: "narrow-wide", testid: "suspend-reason", required: true }));
      const form = h("form", { class: "row nowrap", hidden: true }, reason,
        h("button", { type: "submit", class: "danger", testid: "suspend-confirm" }, "Suspend"),
        h("button", { type: "button", onclick: () => { form.hidden = true; start.hidden = false; } }, "Cancel"));
      form.addEventListener("submit", (e) => { e.preventDefault(); if (reason.value.trim()) act("suspend", reason.value.trim()); });
      const start = h("button", { type: "button", class: "danger", testid: "user-suspend",
        onclick: () => { form.hidden = false; start.hidden = true; reason.focus(); } }, "Suspend…");
      fill(box, start, form);
    };
    /** @param {"suspend"|"restore"} what @param {string} reason */
    async function act(what, reason) {
      try {
        const r = await ctx.api.post(`/api/users/${encodeURIComponent(u.id)}/${what}`, reason ? { reason } : {});
        Object.assign(u, r.user || { status: what === "suspend" ? "suspended" : "active" });
        showStatus(`${u.name} ${what === "suspend" ? "suspended" : "restored"}.`);
        statusCell.get(u.id)?.replaceChildren(pill(u.status));
        render();
      } catch (err) { showError(/** @type {any} */ (err), what === "suspend" ? "Suspending" : "Restoring"); }
    }
    render();
    return box;
  }
  /** @type {Map<string, HTMLElement>} */
  const statusCell = new Map();

  /** @type {{label: string, cell: (u: any) => any, num?: boolean, date?: boolean}[]} */
  const cols = [
    { label: "Name", cell: (u) => u.role === "expert" ? h("a", { href: "#/experts/" + encodeURIComponent(u.id), testid: "user-name" }, u.name) : h("span", { testid: "user-name" }, u.name) },
    { label: "E-mail", cell: (u) => u.email },
  ];
  if (!expertsOnly) cols.push({ label: "Role", cell: (u) => u.role });
  cols.push(
    { label: "Status", cell: (u) => { const c = h("span", { testid: "user-status" }, pill(u.status)); statusCell.set(u.id, c); return c; } },
    { label: "Verification", cell: verificationCell },
    { label: "Since", date: true, cell: (u) => fmtShort(u.created_at) },
    { label: "", cell: actionsCell },
  );
  const t = table(cols, { testid: expertsOnly ? "experts-table" : "users-table", rowTestid: "user-row", empty: "No one matches." });
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/users", { q: q.value.trim(), role: expertsOnly ? "expert" : role.value, status: status.value, cursor, limit: 25 });
    return { items: r.users || [], next: r.next_cursor };
  }, (items) => t.add(items), { testid: "users-more" });
  const filters = h("form", { class: "row filters" }, field("Search", q).el,
    expertsOnly ? null : field("Role", role).el, field("Status", status).el,
    h("button", { type: "submit", testid: "users-search" }, "Search"));
  const reload = () => { t.clear(); statusCell.clear(); p.first(); };
  filters.addEventListener("submit", (e) => { e.preventDefault(); reload(); });
  fill(panel, filters, t.el, p.el);
  reload();
  return reload;
}

// ---------- audit log --------------------------------------------------------------------

/** @param {any} d */
function detailsText(d) {
  if (!d || typeof d !== "object") return d ? String(d) : "";
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
}

/** @param {Ctx} ctx @param {HTMLElement} panel */
function auditTab(ctx, panel) {
  const t = table([
    { label: "When", date: true, cell: (/** @type {any} */ e) => fmtShort(e.at) },
    { label: "Manager", cell: (/** @type {any} */ e) => e.manager ? e.manager.name : "?" },
    { label: "Action", cell: (/** @type {any} */ e) => h("code", { testid: "audit-action" }, e.action) },
    { label: "Target", cell: (/** @type {any} */ e) => `${e.target_type} ${e.target_id}` },
    { label: "Details", cell: (/** @type {any} */ e) => h("span", { class: "small" }, detailsText(e.details)) },
  ], { testid: "audit-table", rowTestid: "audit-row", empty: "Nothing yet." });
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/audit", { cursor, limit: 30 });
    return { items: r.entries || [], next: r.next_cursor };
  }, (items) => t.add(items), { testid: "audit-more" });
  fill(panel, h("p", { class: "muted small" }, "Every decision, verification, suspension and payout run, newest first."), t.el, p.el);
  const reload = () => { t.clear(); p.first(); };
  reload();
  return reload;
}

// ---------- payouts ------------------------------------------------------------------------

/** @param {Ctx} ctx @param {HTMLElement} panel */
function payoutsTab(ctx, panel) {
  const once = new IdempotentAction();
  const month = /** @type {HTMLInputElement} */ (h("input", { type: "month", value: lastMonth(), required: true, testid: "payouts-month" }));
  const run = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary", testid: "payouts-run" }, "Run payouts"));
  const result = h("div", { testid: "payouts-result" });
  const paid = table([
    { label: "Expert", cell: (/** @type {any} */ p) => p.expert ? p.expert.name : "?" },
    { label: "Period", cell: (/** @type {any} */ p) => fmtMonth(p.period) },
    { label: "Amount", num: true, cell: (/** @type {any} */ p) => dollars(p.amount_cents) },
    { label: "Sent", date: true, cell: (/** @type {any} */ p) => fmtShort(p.created_at) },
  ], { testid: "payouts-table", rowTestid: "payout-row", empty: "No payouts for this month." });
  const form = h("form", { class: "row filters" }, field("Month", month, { field: "month" }).el, run);
  async function list() {
    try {
      const r = await ctx.api.get("/api/payouts", { month: month.value });
      paid.clear();
      paid.add(r.payouts || []);
    } catch (err) { showError(/** @type {any} */ (err), "Loading payouts"); }
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { month: month.value };
    run.disabled = true;
    try {
      const r = await ctx.api.post("/api/payouts/run", body, once.keyFor(body));
      const held = r.held || [];
      fill(result, h("div", { class: "notice" },
        h("p", {}, `${fmtMonth(r.period)}: ${r.payouts.length} payout(s) sent, ${dollars(r.payouts.reduce((/** @type {number} */ a, /** @type {any} */ p) => a + p.amount_cents, 0))} in all.`),
        held.length ? [h("p", {}, "Held (not paid):"), h("ul", {}, held.map((/** @type {any} */ x) => h("li", { testid: "payout-held" },
          `${x.expert ? x.expert.name : "?"}: ${dollars(x.balance_cents)}`, x.missing && x.missing.length ? ` — missing ${x.missing.join(", ")}` : "")))] : null));
      showStatus(`Payouts for ${fmtMonth(r.period)} done.`);
      list();
    } catch (err) { showError(/** @type {any} */ (err), "Payout run"); }
    finally { run.disabled = false; }
  });
  month.addEventListener("change", list);
  fill(panel, h("p", { class: "muted small" }, "Pays each expert with a complete payout profile his balance at the end of the month. " +
    "Running it again for the same month pays nobody twice."), form, result, h("h3", {}, "Payouts of the month"), paid.el);
  list();
  return list;
}

// ---------- dead letters ------------------------------------------------------------------

/** @param {any} d */
function deadLetterWhat(d) {
  if (d.message) {
    const m = d.message;
    return h("span", { testid: "dead-letter-what" }, `${m.channel === "payout" ? "payout" : m.channel + " to " + m.address}: ${m.subject}`);
  }
  return h("span", { testid: "dead-letter-what" }, h("code", {}, d.kind), " ", d.ref);
}

/** @param {Ctx} ctx @param {HTMLElement} panel */
function deadLettersTab(ctx, panel) {
  const status = /** @type {HTMLSelectElement} */ (h("select", { testid: "dead-letters-status" },
    h("option", { value: "dead" }, "Waiting for a retry"),
    h("option", { value: "retried" }, "Retried"),
    h("option", { value: "" }, "All")));

  /** @param {any} d */
  function retryCell(d) {
    const box = h("div", { class: "row nowrap" });
    const render = () => {
      if (d.status !== "dead") {
        fill(box, h("span", { class: "muted small", testid: "dead-letter-retried" },
          `retried ${fmtShort(d.retried_at)}${d.retried_by && d.retried_by.name ? " by " + d.retried_by.name : ""}`));
        return;
      }
      const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", testid: "dead-letter-retry" }, "Retry"));
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const r = await ctx.api.post(`/api/dead-letters/${encodeURIComponent(d.id)}/retry`, {});
          Object.assign(d, r.dead_letter);
          showStatus(`Dead letter ${d.id} scheduled again.`);
          render();
        } catch (err) {
          showError(/** @type {any} */ (err), "Retry");
          button.disabled = false;
        }
      });
      fill(box, button);
    };
    render();
    return box;
  }

  const t = table([
    { label: "Failed", date: true, cell: (/** @type {any} */ d) => fmtShort(d.failed_at) },
    { label: "What", cell: deadLetterWhat },
    { label: "Tries", num: true, cell: (/** @type {any} */ d) => String(d.attempts) },
    { label: "Last error", cell: (/** @type {any} */ d) => h("span", { class: "small", testid: "dead-letter-error" }, d.last_error) },
    { label: "", cell: retryCell },
  ], { testid: "dead-letters-table", rowTestid: "dead-letter-row", empty: "Nothing failed for good." });
  const p = pager(async (cursor) => {
    const r = await ctx.api.get("/api/dead-letters", { status: status.value, cursor, limit: 25 });
    return { items: r.dead_letters || [], next: r.next_cursor };
  }, (items) => t.add(items), { testid: "dead-letters-more" });
  const reload = () => { t.clear(); p.first(); };
  status.addEventListener("change", reload);
  fill(panel, h("div", { class: "row filters" }, field("Show", status).el),
    h("p", { class: "muted small" }, "E-mails, texts, payouts and other timed work that failed every try, newest first. " +
      "Retry one once its cause is fixed: it is tried again at once, with its tries counted afresh."), t.el, p.el);
  reload();
  return reload;
}

/** @param {HTMLElement} root @param {{tab?: string}} params @param {Ctx} ctx */
export function mount(root, params, ctx) {
  const TABS = [
    { name: "claims", label: "Claims queue" },
    { name: "experts", label: "Experts" },
    { name: "users", label: "Users" },
    { name: "audit", label: "Audit log" },
    { name: "payouts", label: "Payouts" },
    { name: "dead-letters", label: "Dead letters" },
  ];
  const tab = TABS.some((t) => t.name === params.tab) ? /** @type {string} */ (params.tab) : "claims";
  const tabs = tabBar(TABS.map((t) => ({ ...t, testid: "manager-tab-" + t.name })), tab, (name) => ctx.navigate("#/manager/" + name), "Manager console");
  const panel = h("div", { role: "tabpanel", testid: "manager-panel" });
  root.append(h("h2", {}, "Manager console"), tabs.bar, panel);
  const refresh = tab === "claims" ? claimsTab(ctx, panel)
    : tab === "experts" ? usersTab(ctx, panel, true)
    : tab === "users" ? usersTab(ctx, panel, false)
    : tab === "audit" ? auditTab(ctx, panel)
    : tab === "dead-letters" ? deadLettersTab(ctx, panel)
    : payoutsTab(ctx, panel);
  return { refresh };
}
