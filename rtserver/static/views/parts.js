// @ts-check
// Pieces shared by several views: the request form (also the "Request help directly" form
// of an expert's page), a request's message thread, attachments, transcripts, the claim and
// review boxes of a session.
import { h, add, field, fill, showError, showStatus, saveBlob, dl, pill, clearFieldErrors, showFieldError } from "../dom.js";
import { fmtTime, fmtClock, fmtSize, toLocalInput, toOffsetIso, localizeTimes, splitList, dollars, stars, CLAIM_TEXT } from "../format.js";
import { IdempotentAction } from "../api.js";
import { addRequestMessage, mergeRequest } from "../store.js";

/** @typedef {import("../app.js").Ctx} Ctx */

// ---------- attachments --------------------------------------------------------------

/** Download an attachment (through fetch: the token never goes into a URL). @param {Ctx} ctx @param {any} a */
export async function downloadAttachment(ctx, a) {
  try {
    saveBlob(await ctx.api.fetchBlob("/api/attachments/" + encodeURIComponent(a.id)), a.name || "attachment");
  } catch (err) { showError(/** @type {any} */ (err), `Downloading “${a.name}”`); }
}

/** @param {Ctx} ctx @param {any} a */
export function attachmentLink(ctx, a) {
  return h("span", {},
    h("button", { type: "button", class: "linklike", testid: "attachment-link", onclick: () => downloadAttachment(ctx, a),
      "aria-label": `Download ${a.name} (${fmtSize(a.size || 0)})` }, a.name || "attachment"),
    h("span", { class: "muted small" }, ` (${fmtSize(a.size || 0)})`));
}

// ---------- chat messages --------------------------------------------------------------

/** The body of a session message (text, code or attachment). @param {Ctx} ctx @param {any} m */
export function messageBody(ctx, m) {
  if (m.kind === "code" && m.code) {
    return h("figure", { class: "msg-code" },
      h("figcaption", {}, m.code.language || "code"),
      h("pre", {}, h("code", {}, m.code.source)));
  }
  if (m.kind === "attachment") {
    return h("p", { class: "msg-text" }, "Attachment: ",
      m.attachment ? attachmentLink(ctx, m.attachment) : h("span", { class: "muted" }, "(not available)"));
  }
  return h("p", { class: "msg-text" }, m.text || "");
}

/** One transcript line. @param {Ctx} ctx @param {any} m */
export function messageItem(ctx, m) {
  const mine = m.from && ctx.me() && m.from.id === ctx.me().id;
  const li = h("li", { class: mine ? "mine" : "", testid: "message" },
    h("div", { class: "msg-head" },
      h("span", { class: "from" }, mine ? "You" : (m.from && m.from.name) || "?"), " · ",
      m.at ? h("time", { datetime: m.at, title: new Date(m.at).toLocaleString() }, fmtClock(m.at)) : null),
    messageBody(ctx, m));
  li.dataset.seq = String(m.seq);
  return li;
}

/**
 * A stored transcript, read page by page (GET /api/sessions/{id}/messages).
 * @param {Ctx} ctx @param {string} sessionId
 */
export function transcriptPager(ctx, sessionId) {
  const list = h("ol", { class: "transcript long", "aria-label": "Transcript", testid: "transcript" });
  const more = h("button", { type: "button", testid: "transcript-more", hidden: true }, "Load more messages");
  const info = h("p", { class: "muted small" });
  let after = 0;
  async function load() {
    /** @type {any} */ (more).disabled = true;
    try {
      const r = await ctx.api.get(`/api/sessions/${encodeURIComponent(sessionId)}/messages`, { after_seq: after, limit: 50 });
      for (const m of r.messages || []) list.append(messageItem(ctx, m));
      after = r.next_after_seq ?? after;
      more.hidden = r.next_after_seq === null || r.next_after_seq === undefined;
      info.textContent = list.children.length ? `${list.children.length} of ${r.last_seq} messages` : "No messages.";
    } catch (err) { showError(/** @type {any} */ (err), "Loading the transcript"); }
    /** @type {any} */ (more).disabled = false;
  }
  more.addEventListener("click", load);
  return { el: h("div", {}, list, info, more), load };
}

// ---------- request messages (before a session) ----------------------------------------

/** @param {Ctx} ctx @param {any} m */
function requestMessageItem(ctx, m) {
  const mine = m.from && ctx.me() && m.from.id === ctx.me().id;
  return h("li", { class: mine ? "mine" : "", testid: "request-message" },
    h("span", { class: "from" }, mine ? "You" : (m.from ? m.from.name : "?")),
    h("span", { class: "muted small" }, " · ", fmtClock(m.at), " "),
    h("span", {}, m.text));
}

/**
 * The messages of a request, and a line to write one (customer and offered experts).
 * @param {Ctx} ctx @param {string} requestId
 * @returns {{el: HTMLElement, render: () => void, setOpen: (open: boolean) => void}}
 */
export function threadView(ctx, requestId) {
  const list = h("ol", { "aria-label": "Messages", "aria-live": "polite" });
  const input = /** @type {HTMLInputElement} */ (h("input", { type: "text", maxlength: "8000", testid: "thread-input",
    "aria-label": "Message about this request", placeholder: "Ask or answer a question…" }));
  const send = h("button", { type: "submit", testid: "thread-send" }, "Send");
  const form = h("form", {}, input, send);
  let shown = 0;
  function render() {
    const t = ctx.store.state.threads.get(requestId);
    const msgs = t ? t.msgs : [];
    if (msgs.length === shown) return;
    for (const m of msgs.slice(shown)) list.append(requestMessageItem(ctx, m));
    shown = msgs.length;
    list.scrollTop = list.scrollHeight;
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    /** @type {any} */ (send).disabled = true;
    const r = await ctx.act("request.message", { request_id: requestId, text }, "Message");
    /** @type {any} */ (send).disabled = false;
    if (r) {
      input.value = "";
      if (r.message) ctx.store.update(["threads"], (s) => { addRequestMessage(s, r.message); });
    }
  });
  render();
  return { el: h("div", { class: "thread" }, list, form), render, setOpen: (open) => { form.hidden = !open; } };
}

// ---------- the request form ---------------------------------------------------------

const MAX_TIMES = 5;

/**
 * 1 to 5 proposed times (datetime-local: the browser's time zone).
 * @param {() => number} serverNow
 */
export function timePicker(serverNow) {
  const list = h("ol", { class: "times", testid: "req-times" });
  const add = h("button", { type: "button", testid: "req-add-time" }, "Add a time");
  let n = 0;
  function renumber() {
    const items = [...list.children];
    items.forEach((li, i) => {
      /** @type {HTMLElement} */ (li.querySelector("label")).textContent = `Time ${i + 1}`;
      /** @type {HTMLButtonElement} */ (li.querySelector("button")).disabled = items.length === 1;
    });
    /** @type {any} */ (add).disabled = items.length >= MAX_TIMES;
  }
  function addTime() {
    if (list.children.length >= MAX_TIMES) return;
    const last = [...list.querySelectorAll("input")].map((i) => i.value).filter(Boolean).pop();
    const suggest = last ? new Date(new Date(last).getTime() + 3600000) : new Date(Math.ceil((Date.now() + 1800000) / 3600000) * 3600000);
    const id = "req-time-" + Math.random().toString(36).slice(2, 8) + ++n;
    const input = h("input", { id, type: "datetime-local", required: true, min: toLocalInput(new Date()), value: toLocalInput(suggest), testid: "req-time" });
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
    const li = h("li", {}, h("label", { for: id }), input,
      h("button", { type: "button", onclick: () => { li.remove(); renumber(); add.focus(); } }, "Remove"));
    list.append(li);
    renumber();
  }
  add.addEventListener("click", () => { addTime(); /** @type {HTMLElement} */ (list.lastElementChild?.querySelector("input")).focus(); });
  const el = h("fieldset", { hidden: true, disabled: true }, h("legend", {}, "Proposed times ", h("span", { class: "hint" }, "(1 to 5, in your time zone)")), list, add);
  return {
    el,
    /** @param {boolean} on */
    show(on) {
      el.hidden = !on;
      /** @type {HTMLFieldSetElement} */ (el).disabled = !on;  // not validated while hidden
      if (on && !list.children.length) addTime();
    },
    reset() { list.replaceChildren(); if (!el.hidden) addTime(); },
    /** The times as ISO strings with the local offset, or null after telling what is wrong. */
    values() {
      const inputs = [...list.querySelectorAll("input")];
      const bad = (/** @type {HTMLInputElement} */ input, /** @type {string} */ text) => {
        input.setAttribute("aria-invalid", "true"); input.focus(); showStatus(text, "error"); return null;
      };
      if (!inputs.length) { showStatus("Propose at least one time.", "error"); return null; }
      const seen = new Map();
      const times = [];
      for (const [i, input] of inputs.entries()) {
        const d = new Date(input.value);
        if (!input.value || Number.isNaN(d.getTime())) return bad(input, `Enter a date and time for time ${i + 1}.`);
        if (d.getTime() <= serverNow()) return bad(input, `Time ${i + 1} (${fmtTime(d.toISOString())}) is in the past.`);
        if (seen.has(d.getTime())) return bad(input, `Times ${seen.get(d.getTime())} and ${i + 1} are the same.`);
        seen.set(d.getTime(), i + 1);
        times.push(toOffsetIso(d));
      }
      return times;
    },
  };
}

/**
 * The form that sends request.create: instant or scheduled; with `expert` it is a direct request.
 * @param {Ctx} ctx
 * @param {{expert?: {id: string, name: string, skills: string[], languages: string[]}, onSent?: (req: any) => void}} [opts]
 */
export function requestForm(ctx, opts = {}) {
  const ex = opts.expert;
  const kindInstant = h("input", { type: "radio", name: "req-kind", value: "instant", checked: true, testid: "req-kind-instant" });
  const kindScheduled = h("input", { type: "radio", name: "req-kind", value: "scheduled", testid: "req-kind-scheduled" });
  const title = /** @type {HTMLInputElement} */ (h("input", { type: "text", maxlength: "200", required: true, testid: "req-title" }));
  const description = /** @type {HTMLTextAreaElement} */ (h("textarea", { maxlength: "10000", testid: "req-description" }));
  const skills = /** @type {HTMLInputElement} */ (h("input", { type: "text", placeholder: "unity, c#", required: true, testid: "req-skills",
    value: ex ? (ex.skills || []).join(", ") : "" }));
  const language = /** @type {HTMLInputElement} */ (h("input", { type: "text", maxlength: "35", required: true, testid: "req-language",
    value: ex && ex.languages && ex.languages.length ? ex.languages[0] : "en" }));
  const expertId = /** @type {HTMLInputElement} */ (h("input", { type: "text", maxlength: "64", testid: "req-expert" }));
  const times = timePicker(() => ctx.serverNow());
  const submit = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "req-submit" }, "Request help"));
  const kind = () => (/** @type {HTMLInputElement} */ (kindScheduled).checked ? "scheduled" : "instant");
  const setKind = () => {
    const sch = kind() === "scheduled";
    times.show(sch);
    submit.textContent = sch ? "Propose times" : ex ? `Ask ${ex.name} now` : "Request help";
  };
  kindInstant.addEventListener("change", setKind);
  kindScheduled.addEventListener("change", setKind);
  const form = h("form", { class: "card", "aria-labelledby": "request-h", testid: "request-form" },
    h("h2", { id: "request-h" }, ex ? `Request help directly from ${ex.name}` : "Ask for help"),
    h("fieldset", { class: "modes" }, h("legend", {}, "When"),
      h("label", {}, kindInstant, " Instant (now)"), h("label", {}, kindScheduled, " Scheduled")),
    field("Title", title).el,
    field("Description", description).el,
    field("Skills", skills, { hint: "comma-separated" }).el,
    field("Language", language).el,
    ex ? null : field("Expert id", expertId, { hint: "optional: ask one expert directly" }).el,
    times.el,
    h("div", { class: "actions" }, submit));
  setKind();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const sk = splitList(skills.value);
    if (!sk.length) { showStatus("Name at least one skill.", "error"); return; }
    /** @type {Record<string, any>} */
    const fields = { kind: kind(), title: title.value.trim(), description: description.value, skills: sk, language: language.value.trim() };
    if (fields.kind === "scheduled") {
      fields.proposed_times = times.values();
      if (!fields.proposed_times) return;
    }
    const direct = ex ? ex.id : expertId.value.trim();
    if (direct) fields.expert_id = direct;
    submit.disabled = true;
    let r = null;
    try { r = await ctx.call("request.create", fields); }
    catch (err) {
      const x = /** @type {any} */ (err);
      showStatus(`Request failed — ${x.code}: ${localizeTimes(x.message)}${x.field ? ` (${x.field})` : ""}`, "error");
    }
    submit.disabled = false;
    if (r && r.request) {
      ctx.store.update(["requests"], (s) => mergeRequest(s, r.request, false));
      title.value = ""; description.value = "";
      times.reset();
      showStatus(fields.kind === "scheduled"
        ? `Request “${r.request.title}” sent with ${r.request.proposed_times.length} proposed time(s).`
        : `Request “${r.request.title}” sent.`);
      if (opts.onSent) opts.onSent(r.request);
    }
  });
  return { el: form };
}

// ---------- a session's claim and review -------------------------------------------------

/** @param {any} claim */
export function claimPill(claim) {
  if (!claim) return null;
  return pill("claim-" + claim.status, CLAIM_TEXT[claim.status] || claim.status, "claim-status");
}

/**
 * The expert's dispute of an open claim: a summary of the session, sent once.
 * @param {Ctx} ctx @param {any} claim @param {(claim: any) => void} onDone
 */
export function disputeForm(ctx, claim, onDone) {
  const once = new IdempotentAction();
  const summary = /** @type {HTMLTextAreaElement} */ (h("textarea", { maxlength: "4000", required: true, testid: "dispute-summary",
    placeholder: "What happened in the session, from your side" }));
  const send = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "dispute-submit" }, "Send dispute"));
  const cancel = h("button", { type: "button" }, "Cancel");
  const f = field("Your summary of the session", summary, { field: "summary", hint: "a community manager reads it" });
  const form = h("form", { class: "notice", testid: "dispute-form", hidden: true },
    h("p", {}, `The customer claims a refund of ${dollars(claim.amount_cents)}: “${claim.reason}”.`),
    f.el, h("div", { class: "row" }, send, cancel));
  cancel.addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { summary: summary.value.trim() };
    if (!body.summary) { summary.focus(); return; }
    send.disabled = true;
    clearFieldErrors(form);
    try {
      const r = await ctx.api.post(`/api/claims/${encodeURIComponent(claim.id)}/dispute`, body, once.keyFor(body));
      form.hidden = true;
      showStatus("Your dispute was sent. A community manager reviews it.");
      onDone(r.claim);
    } catch (err) {
      if (!showFieldError(form, /** @type {any} */ (err))) showError(/** @type {any} */ (err), "Dispute");
    } finally { send.disabled = false; }
  });
  const open = h("button", { type: "button", class: "danger", testid: "dispute-open",
    onclick: () => { form.hidden = false; summary.focus(); } }, "Dispute");
  return { button: open, form };
}

/**
 * The claim of a session as its customer, expert or a manager sees it, with the actions the
 * viewer has: the customer's "Claim a refund", the expert's "Dispute".
 * @param {Ctx} ctx @param {any} session @param {() => void} onChange
 */
export function claimBox(ctx, session, onChange) {
  const role = ctx.role();
  const c = session.claim;
  const box = h("section", { class: "card", "aria-label": "Refund claim", testid: "claim-box" }, h("h3", {}, "Refund claim"));
  if (c) {
    box.append(h("div", { class: "row" }, claimPill(c), h("span", { class: "muted small" }, "claimed ", fmtTime(c.created_at))),
      dl([
        ["Amount", dollars(c.amount_cents)],
        ["Customer's reason", c.reason],
        ["Expert's dispute", c.dispute_summary || null],
        ["Disputed", c.disputed_at ? fmtTime(c.disputed_at) : null],
        ["Decision", c.outcome ? `${c.outcome.replace("_", " ")}${c.decided_by ? " by " + c.decided_by.name : ""}` : null],
        ["Decided", c.decided_at ? fmtTime(c.decided_at) : null],
        ["Note", c.note || null],
      ], "claim-details"));
    if (role === "expert" && c.status === "open") {
      const d = disputeForm(ctx, c, () => onChange());
      box.append(h("p", { class: "small muted" }, "If you think the refund is not fair, dispute it and tell what happened. " +
        "If your dispute is accepted you keep your earnings; if it is rejected, the refund is deducted from them."),
        h("div", { class: "row" }, d.button), d.form);
    }
    return box;
  }
  const ended = session.status === "ended";
  const charged = !!(session.summary && session.summary.charge_cents > 0);
  if (role === "customer" && ended && charged) {
    const once = new IdempotentAction();
    const reason = /** @type {HTMLTextAreaElement} */ (h("textarea", { maxlength: "2000", required: true, testid: "refund-reason",
      placeholder: "What went wrong" }));
    const send = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "refund-submit" }, "Send claim"));
    const f = field("Why should this session be refunded?", reason, { field: "reason" });
    const form = h("form", { testid: "refund-form", hidden: true }, f.el, h("div", { class: "row actions" }, send));
    const open = h("button", { type: "button", testid: "refund-open", onclick: () => { form.hidden = false; open.hidden = true; reason.focus(); } },
      `Claim a refund of ${dollars(session.summary.charge_cents)}`);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { reason: reason.value.trim() };
      if (!body.reason) { reason.focus(); return; }
      send.disabled = true;
      clearFieldErrors(form);
      try {
        await ctx.api.post(`/api/sessions/${encodeURIComponent(session.id)}/refund-claim`, body, once.keyFor(body));
        showStatus("Your refund claim was sent. A community manager decides on it.");
        onChange();
      } catch (err) {
        if (!showFieldError(form, /** @type {any} */ (err))) showError(/** @type {any} */ (err), "Claim");
      } finally { send.disabled = false; }
    });
    box.append(h("p", { class: "muted" }, "No refund claimed."), open, form);
  } else {
    box.append(h("p", { class: "muted", testid: "no-claim" }, "No refund claimed."));
  }
  return box;
}

/**
 * The review of a session; the customer of an ended session without one may rate it.
 * @param {Ctx} ctx @param {any} session @param {() => void} onChange
 */
export function reviewBox(ctx, session, onChange) {
  const r = session.review;
  const box = h("section", { class: "card", "aria-label": "Review", testid: "review-box" }, h("h3", {}, "Review"));
  if (r) {
    add(box, h("p", { class: "stars", "aria-label": `${r.stars} of 5 stars`, testid: "review-stars" }, stars(r.stars)),
      r.comment ? h("p", { class: "desc" }, r.comment) : null,
      h("p", { class: "muted small" }, "by ", r.customer ? r.customer.name : "the customer", ", ", fmtTime(r.created_at)));
    return box;
  }
  if (ctx.role() !== "customer" || session.status !== "ended") {
    box.append(h("p", { class: "muted" }, "Not reviewed."));
    return box;
  }
  const once = new IdempotentAction();
  const radios = [1, 2, 3, 4, 5].map((n) => h("label", { class: "star" },
    h("input", { type: "radio", name: "stars-" + session.id, value: String(n), required: true, testid: `rate-${n}` }), `${n} ★`));
  const comment = /** @type {HTMLTextAreaElement} */ (h("textarea", { maxlength: "2000", testid: "rate-comment" }));
  const send = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "rate-submit" }, "Send review"));
  const form = h("form", { testid: "rate-form" },
    h("fieldset", { class: "modes stars-input" }, h("legend", {}, "Stars"), radios),
    field("Comment", comment, { hint: "optional", field: "comment" }).el,
    h("div", { class: "row actions" }, send));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = /** @type {HTMLInputElement|null} */ (form.querySelector("input[type=radio]:checked"));
    if (!chosen) { showStatus("Choose 1 to 5 stars.", "error"); return; }
    /** @type {Record<string, any>} */
    const body = { stars: Number(chosen.value) };
    if (comment.value.trim()) body.comment = comment.value.trim();
    send.disabled = true;
    try {
      await ctx.api.post(`/api/sessions/${encodeURIComponent(session.id)}/review`, body, once.keyFor(body));
      showStatus("Thank you for your review.");
      onChange();
    } catch (err) {
      if (!showFieldError(form, /** @type {any} */ (err))) showError(/** @type {any} */ (err), "Review");
    } finally { send.disabled = false; }
  });
  box.append(h("h4", {}, "Rate this session"), form);
  return box;
}

// ---------- active sessions ------------------------------------------------------------

/** A card for an active session, with "Open room". @param {Ctx} ctx @param {any} s */
export function activeSessionCard(ctx, s) {
  const other = ctx.role() === "expert" ? s.customer : s.expert;
  return h("article", { class: "card", "aria-label": s.title, testid: "active-session" },
    h("div", { class: "card-head" },
      h("span", { class: "badge " + (s.kind === "scheduled" ? "scheduled" : "instant") }, s.kind === "scheduled" ? "Scheduled" : "Instant"),
      h("h3", {}, s.title), pill(s.status)),
    h("div", { class: "meta" },
      h("span", {}, "With ", other && other.name ? other.name : "?"),
      h("span", {}, s.started_at ? `Started ${fmtTime(s.started_at)}` : `Booked ${fmtTime(s.created_at)}`),
      h("span", {}, "Rate ", dollars(s.rate_cents_per_15min || 0), " / 15 min")),
    h("div", { class: "row actions" },
      h("button", { class: "primary", type: "button", testid: "open-room", onclick: () => ctx.navigate("#/room/" + s.id) }, "Open room")));
}

/** Fill a box with the active sessions of the store. @param {Ctx} ctx @param {HTMLElement} box */
export function renderActive(ctx, box) {
  const active = [...ctx.store.state.sessions.values()].filter((x) => x.status === "active")
    .sort((a, b) => String(a.started_at || a.created_at).localeCompare(String(b.started_at || b.created_at)));
  fill(box, active.length ? active.map((s) => activeSessionCard(ctx, s)) : h("p", { class: "empty" }, "No active sessions."));
}
