// @ts-check
// The expert's New Requests: instant and scheduled offers, Accept (with one of the proposed
// times for a scheduled one) or Decline, and a message thread with the customer.
import { h, fill, skillList, showError, showStatus } from "../dom.js";
import { fmtTime, fmtLeft } from "../format.js";
import { threadView } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const LOST = /** @type {Record<string, string>} */ ({ offer_taken: "taken", offer_expired: "expired", request_cancelled: "cancelled" });
/** What an accept that came too late says. */
const TOO_LATE = /** @type {Record<string, (title: string) => string>} */ ({
  offer_taken: (t) => `Too late: another expert accepted “${t}” first.`,
  offer_expired: (t) => `Too late: the offer for “${t}” expired.`,
  request_cancelled: (t) => `The customer cancelled “${t}”.`,
});

/** @param {Ctx} ctx @param {string} requestId */
function offerCard(ctx, requestId) {
  const entry0 = /** @type {any} */ (ctx.store.state.offers.get(requestId));
  const offer = entry0.offer;
  const scheduled = offer.kind === "scheduled";
  const countdown = h("span", { class: "countdown" });
  const note = h("p", { class: "gone-note", role: "status", testid: "offer-gone" });
  let times = null;
  if (scheduled) {
    times = h("fieldset", {}, h("legend", {}, "Choose a time"),
      (offer.proposed_times || []).map((/** @type {string} */ t, /** @type {number} */ i) => h("label", {},
        h("input", { type: "radio", name: "time-" + requestId, value: t, checked: i === 0, testid: "offer-time" }), fmtTime(t))));
  }
  let busy = false;
  const thread = threadView(ctx, requestId);
  const accept = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "button", testid: "offer-accept" }, "Accept"));
  const decline = /** @type {HTMLButtonElement} */ (h("button", { class: "danger", type: "button", testid: "offer-decline" }, "Decline"));
  const el = h("article", { class: "card", "aria-label": offer.title, testid: "offer" },
    h("div", { class: "card-head" },
      h("span", { class: "badge " + (scheduled ? "scheduled" : "instant") }, scheduled ? "Scheduled" : "Instant"),
      offer.direct ? h("span", { class: "badge direct" }, "Direct") : null,
      h("h3", { testid: "offer-title" }, offer.title),
      h("span", { class: "small muted" }, "Expires in ", countdown)),
    h("div", { class: "meta" },
      h("span", {}, "Customer: ", offer.customer ? offer.customer.name : "?"),
      h("span", {}, "Language: ", offer.language)),
    offer.description ? h("p", { class: "desc" }, offer.description) : null,
    skillList(offer.skills),
    (offer.attachments || []).length ? h("p", { class: "small muted" }, `${offer.attachments.length} attachment(s): `,
      offer.attachments.map((/** @type {any} */ a) => a.name).join(", ")) : null,
    times, note,
    h("div", { class: "row actions" }, accept, decline),
    thread.el);

  accept.addEventListener("click", async () => {
    /** @type {Record<string, any>} */
    const fields = { request_id: requestId };
    if (scheduled && times) {
      const chosen = /** @type {HTMLInputElement|null} */ (times.querySelector("input:checked"));
      if (!chosen) { showStatus("Choose one of the proposed times first.", "error"); return; }
      fields.time = chosen.value;
    }
    busy = true; update();
    try {
      const r = await ctx.call("offer.accept", fields);
      ctx.store.update(["offers", "sessions"], (s) => {
        if (r.session) s.sessions.set(r.session.id, r.session);
        s.offers.delete(requestId);
      });
      showStatus(scheduled ? `Booked “${offer.title}” for ${fmtTime(fields.time)}.` : `You accepted “${offer.title}”. The session is active.`);
      if (r.session && r.session.status === "active") ctx.navigate("#/room/" + r.session.id);
      else ctx.navigate("#/upcoming");
    } catch (err) {
      const e = /** @type {any} */ (err);
      busy = false;
      if (LOST[e.code]) {
        showStatus(TOO_LATE[e.code](offer.title), "error");
        ctx.offerGone(requestId, LOST[e.code]);
      } else { showError(e, "Accept"); update(); }
    }
  });
  decline.addEventListener("click", async () => {
    busy = true; update();
    if (await ctx.act("offer.decline", { request_id: requestId }, "Decline")) {
      ctx.store.update(["offers"], (s) => { s.offers.delete(requestId); });
    } else { busy = false; update(); }
  });
  function update() {
    const entry = ctx.store.state.offers.get(requestId);
    if (!entry) return;
    const left = Date.parse(entry.offer.expires_at) - ctx.serverNow();
    countdown.textContent = fmtLeft(left);
    const closed = entry.gone || left <= 0;
    el.classList.toggle("gone", !!closed);
    note.textContent = entry.gone || (left <= 0 ? "Expired" : "");
    note.hidden = !closed;
    accept.disabled = decline.disabled = busy || !!closed || !ctx.online();
    thread.setOpen(!closed);  // messages only go to open requests
    thread.render();
  }
  return { el, update };
}

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const box = h("div", { testid: "offers" });
  root.append(h("h2", {}, "New Requests"),
    h("p", { class: "muted small" }, "Instant requests need help now; for a scheduled request, choose one of the times the customer proposed."),
    box);
  /** @type {Map<string, {el: HTMLElement, update: () => void}>} */
  const cards = new Map();
  function render() {
    const { offers, presence } = ctx.store.state;
    for (const id of cards.keys()) if (!offers.has(id)) cards.delete(id);
    const els = [];
    for (const id of offers.keys()) {
      if (!cards.has(id)) cards.set(id, offerCard(ctx, id));
      const c = /** @type {any} */ (cards.get(id));
      c.update();
      els.push(c.el);
    }
    if (!els.length) {
      els.push(h("p", { class: "empty", testid: "offers-empty" }, presence === "available"
        ? "No new requests right now. They appear here as soon as a customer needs you."
        : "No new requests. Switch to Available to receive instant requests."));
    }
    fill(box, els);
  }
  const off = ctx.store.subscribe((_s, changed) => {
    if (changed.has("offers") || changed.has("presence") || changed.has("threads") || changed.has("conn")) render();
  });
  render();
  return {
    unmount: off,
    tick() { for (const c of cards.values()) c.update(); },
    refresh: render,
  };
}
