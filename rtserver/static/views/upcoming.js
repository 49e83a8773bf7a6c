// @ts-check
// Upcoming Sessions: the active sessions (Open room), then the scheduled ones soonest first
// (Start within the start window, Cancel with a warning near the start), then the ones
// cancelled while this page was open (until dismissed).
//
// The page only guesses the server's windows (--early-start, --late-cancel) from their usual
// values; the server's answer decides.
import { h, fill, showStatus, pill, confirmBox } from "../dom.js";
import { fmtTime, fmtClock, fmtLeft, dollars, localizeTimes } from "../format.js";
import { noteCancelled, sessionsWith, applySessionUpdate } from "../store.js";
import { activeSessionCard } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const EARLY_START_MS = 10 * 60 * 1000;
const LATE_CANCEL_MS = 60 * 60 * 1000;
/** session ids whose "Start" (session.join) is in flight */
const starting = new Set();

/** Whether this page is starting the session now (its Start opens the room). @param {string} id */
export const isStarting = (id) => starting.has(id);

/** @param {Ctx} ctx @param {any} s */
const otherParty = (ctx, s) => (ctx.role() === "expert" ? s.customer : s.expert) || {};
/** @param {any} p */
const personName = (p) => (p && p.name) || "the other participant";

/** @param {Ctx} ctx @param {import("../store.js").Cancelled} c */
export function cancelText(ctx, c) {
  const title = `“${c.session.title}”`;
  const other = otherParty(ctx, c.session);
  let why;
  if (c.reason === "no_show") {
    const joined = c.session.joined || [];
    const meIn = joined.includes(ctx.me().id), otherIn = !!other.id && joined.includes(other.id);
    const who = !meIn && !otherIn ? "neither of you joined in time" : meIn ? `${personName(other)} did not join in time` : "you did not join in time";
    why = `${title} was cancelled: no-show — ${who}.`;
  } else why = c.byMe ? `You cancelled ${title}.` : `${title} was cancelled by ${personName(other)}.`;
  let fee;
  if (!c.fee_cents || !c.charged_user_id) fee = "No fee.";
  else if (c.charged_user_id === ctx.me().id) fee = `You were charged ${dollars(c.fee_cents)}.`;
  else fee = `${personName(other)} was charged ${dollars(c.fee_cents)}; you receive it less the platform fee.`;
  return `${why} ${fee}`;
}

/** @param {Ctx} ctx @param {string} sessionId */
async function startSession(ctx, sessionId) {
  starting.add(sessionId);
  ctx.refreshView();
  let r = null;
  try {
    const ch = ctx.conn && ctx.conn.channel(sessionId);
    r = await ctx.call("session.join", { session_id: sessionId, after_seq: ch ? ch.lastSeq : 0 });
  } catch (err) {
    const e = /** @type {any} */ (err);
    showStatus(`Start failed — ${e.code}: ${localizeTimes(e.message)}`, "error");
  }
  starting.delete(sessionId);
  ctx.refreshView();
  if (!r || r.session.status === "cancelled" || r.session.status === "ended") return;
  ctx.store.update(["sessions"], (s) => { applySessionUpdate(s, r.session); });
  ctx.openRoom(sessionId, r);
}

/** @param {Ctx} ctx @param {string} sessionId */
async function cancelSession(ctx, sessionId) {
  const s = ctx.store.state.sessions.get(sessionId);
  ctx.cancellingHere.add(sessionId);  // its session.cancelled event may come before the reply
  const r = await ctx.act("session.cancel", { session_id: sessionId }, "Cancelling the session");
  ctx.cancellingHere.delete(sessionId);
  if (!r) return false;
  ctx.store.update(["cancelled", "sessions"], (st) => {
    noteCancelled(st, sessionId, { reason: "cancelled", fee_cents: r.fee_cents, charged_user_id: r.charged_user_id }, s, true);
    st.sessions.delete(sessionId);
  });
  return true;
}

/** @param {Ctx} ctx @param {string} sessionId */
function upcomingCard(ctx, sessionId) {
  const s0 = ctx.store.state.sessions.get(sessionId);
  const when = h("span", { class: "when", testid: "upcoming-when" });
  const countdown = h("span", { class: "countdown" });
  const withWhom = h("span", {});
  const joined = h("ul", { class: "joined", "aria-label": "Who has joined" });
  const startHint = h("span", { class: "small muted" });
  const startBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "button", testid: "upcoming-start",
    onclick: () => startSession(ctx, sessionId) }, "Start"));
  const startWrap = h("span", {}, startBtn);
  const cancelBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "danger", type: "button", testid: "upcoming-cancel" }, "Cancel…"));
  const confirm = confirmBox("Yes, cancel the session", "Keep it", "cancel-confirm");
  const el = h("article", { class: "card upcoming", "aria-label": s0.title, testid: "upcoming-session" },
    h("div", { class: "card-head" },
      h("span", { class: "badge scheduled" }, "Scheduled"),
      h("h3", {}, s0.title), pill("scheduled")),
    h("div", { class: "meta" }, when, countdown),
    h("div", { class: "meta" }, withWhom,
      h("span", {}, "Rate ", dollars(s0.rate_cents_per_15min || 0), " / 15 min")),
    joined,
    h("div", { class: "row actions" }, startWrap, cancelBtn, startHint),
    confirm.el);
  let busy = false;
  cancelBtn.addEventListener("click", () => {
    const s = ctx.store.state.sessions.get(sessionId);
    const left = Date.parse(s.scheduled_at) - ctx.serverNow();
    confirm.ask(`Cancel “${s.title}” with ${personName(otherParty(ctx, s))} at ${fmtTime(s.scheduled_at)}?` +
      (left < LATE_CANCEL_MS ? " It starts soon: cancelling close to the start may cost a cancellation fee." : ""), async () => {
      busy = true; update();
      await cancelSession(ctx, sessionId);
      busy = false; update();
    });
  });
  function update() {
    const s = ctx.store.state.sessions.get(sessionId);
    if (!s) return;
    const at = Date.parse(s.scheduled_at), left = at - ctx.serverNow();
    const other = otherParty(ctx, s), ids = s.joined || [];
    when.textContent = new Date(at).toLocaleString(undefined, { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    countdown.textContent = left > 0 ? `starts in ${fmtLeft(left)}` : `started ${fmtLeft(-left)} ago`;
    withWhom.textContent = `With ${personName(other)} (${ctx.role() === "expert" ? "customer" : "expert"})`;
    const iJoined = ids.includes(ctx.me().id), theyJoined = other.id && ids.includes(other.id);
    fill(joined,
      h("li", { class: iJoined ? "yes" : "" }, iJoined ? "You: joined" : "You: not joined yet"),
      h("li", { class: theyJoined ? "yes" : "" }, `${personName(other)}: ${theyJoined ? "joined" : "not joined yet"}`));
    const early = left > EARLY_START_MS;
    const opens = new Date(at - EARLY_START_MS);
    startBtn.textContent = iJoined ? "Open room" : starting.has(sessionId) ? "Starting…" : "Start";
    startBtn.disabled = busy || early || starting.has(sessionId) || !ctx.online();
    startWrap.title = early ? `You can start up to 10 minutes before the session time (from ${fmtClock(opens.toISOString())}).` : "";
    startHint.textContent = early ? `Start opens at ${fmtClock(opens.toISOString())}.`
      : left > 0 ? "You can start now; the session begins when you have both joined."
      : "The session is cancelled if you have not both joined shortly after the start.";
    cancelBtn.hidden = left <= 0;  // from the start on, the server's no-show check decides
    cancelBtn.disabled = /** @type {any} */ (confirm.yes).disabled = busy || !ctx.online();
    if (left <= 0) confirm.hide();
  }
  return { el, update };
}

/** @param {Ctx} ctx @param {string} sessionId */
function cancelledCard(ctx, sessionId) {
  const c = /** @type {import("../store.js").Cancelled} */ (ctx.store.state.cancelled.get(sessionId));
  return h("article", { class: "card gone", "aria-label": c.session.title, testid: "cancelled-session" },
    h("div", { class: "card-head" },
      h("span", { class: "badge scheduled" }, "Scheduled"),
      h("h3", {}, c.session.title), pill("cancelled", c.reason === "no_show" ? "no-show" : "cancelled")),
    c.session.scheduled_at ? h("div", { class: "meta" }, h("span", {}, "Was scheduled for ", fmtTime(c.session.scheduled_at))) : null,
    h("p", { class: "outcome", role: "status" }, cancelText(ctx, c)),
    h("div", { class: "row" }, h("button", { type: "button",
      onclick: () => ctx.store.update(["cancelled"], (s) => { s.cancelled.delete(sessionId); }) }, "Dismiss")));
}

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const activeBox = h("div", { testid: "active-sessions" });
  const box = h("div", { testid: "upcoming" });
  root.append(h("h2", {}, "Upcoming Sessions"),
    h("p", { class: "muted small" }, "Scheduled sessions start when you have both joined; you can start up to 10 minutes early."),
    box, h("h2", {}, "Active sessions"), activeBox);
  /** @type {Map<string, {el: HTMLElement, update: () => void}>} */
  const cards = new Map();
  function render() {
    const st = ctx.store.state;
    const list = sessionsWith(st, "scheduled");
    for (const id of cards.keys()) if (!list.some((x) => x.id === id)) cards.delete(id);
    const els = list.map((x) => {
      if (!cards.has(x.id)) cards.set(x.id, upcomingCard(ctx, x.id));
      const c = /** @type {any} */ (cards.get(x.id));
      c.update();
      return c.el;
    });
    for (const id of st.cancelled.keys()) if (!st.sessions.has(id)) els.push(cancelledCard(ctx, id));
    if (!els.length) els.push(h("p", { class: "empty", testid: "upcoming-empty" }, "No upcoming sessions."));
    fill(box, els);
    const active = sessionsWith(st, "active");
    fill(activeBox, active.length ? active.map((s) => activeSessionCard(ctx, s)) : h("p", { class: "empty" }, "No active sessions."));
  }
  // The portal's list (GET /api/sessions?status=scheduled) is the truth too: merge it in.
  async function load() {
    try {
      const r = await ctx.api.get("/api/sessions", { status: "scheduled,active", limit: 100 });
      ctx.store.update(["sessions"], (s) => { for (const x of r.sessions || []) applySessionUpdate(s, x); });
    } catch (err) { /* the socket's state still fills the page */ }
  }
  const off = ctx.store.subscribe((_s, changed) => {
    if (["sessions", "cancelled", "conn"].some((k) => changed.has(k))) render();
  });
  render();
  load();
  return { unmount: off, tick() { for (const c of cards.values()) c.update(); }, refresh() { render(); load(); } };
}
