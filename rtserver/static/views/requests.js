// @ts-check
// The customer's "Ask for help": the request form, his requests (status, experts notified,
// countdown, cancel, messages with the offered experts) and his active sessions.
import { h, fill, skillList, showStatus } from "../dom.js";
import { fmtTime, fmtLeft } from "../format.js";
import { requestForm, threadView, renderActive } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/** @param {Ctx} ctx @param {string} id */
function requestCard(ctx, id) {
  const countdown = h("span", { class: "countdown" });
  const status = h("span", { class: "pill", testid: "request-status" });
  const notified = h("span", { testid: "request-notified" });
  const { req } = /** @type {any} */ (ctx.store.state.requests.get(id));
  const scheduled = req.kind === "scheduled";
  const expiry = h("span", {}, scheduled ? "Open — closes in " : "Searching — expires in ", countdown);
  const outcome = h("p", { testid: "request-outcome" });
  const cancel = /** @type {HTMLButtonElement} */ (h("button", { class: "danger", type: "button", testid: "request-cancel" }, "Cancel request"));
  const dismiss = h("button", { type: "button", testid: "request-dismiss" }, "Dismiss");
  const open = h("button", { class: "primary", type: "button", testid: "request-open-room", hidden: true }, "Open room");
  const thread = threadView(ctx, id);
  const el = h("article", { class: "card", "aria-label": req.title, testid: "request" },
    h("div", { class: "card-head" },
      h("span", { class: "badge " + (scheduled ? "scheduled" : "instant") }, scheduled ? "Scheduled" : "Instant"),
      req.direct ? h("span", { class: "badge direct" }, "Direct") : null,
      h("h3", {}, req.title), status),
    h("div", { class: "meta" }, notified, expiry,
      req.language ? h("span", {}, "Language: ", req.language) : null,
      req.created_at ? h("span", {}, "Asked ", fmtTime(req.created_at)) : null),
    req.description ? h("p", { class: "desc" }, req.description) : null,
    req.skills ? skillList(req.skills) : null,
    scheduled && (req.proposed_times || []).length ? h("div", { class: "small" }, "Proposed times:",
      h("ul", { class: "proposed" }, req.proposed_times.map((/** @type {string} */ t) => h("li", {}, fmtTime(t))))) : null,
    outcome,
    h("div", { class: "row actions" }, open, cancel, dismiss),
    thread.el);
  let busy = false;
  cancel.addEventListener("click", async () => {
    busy = true; update();
    if (await ctx.act("request.cancel", { request_id: id }, "Cancel")) showStatus(`Request “${req.title}” cancelled.`);
    busy = false; update();
  });
  dismiss.addEventListener("click", () => ctx.store.update(["requests", "threads"], (s) => { s.requests.delete(id); s.threads.delete(id); }));
  open.addEventListener("click", () => {
    const e = ctx.store.state.requests.get(id);
    if (e && e.req.session_id) ctx.navigate("#/room/" + e.req.session_id);
  });
  function update() {
    const entry = ctx.store.state.requests.get(id);
    if (!entry) return;
    const r = entry.req, isOpen = r.status === "open";
    status.textContent = r.status;
    status.className = "pill " + r.status;
    const n = r.notified || 0;
    notified.textContent = `${n} expert${n === 1 ? "" : "s"} notified`;
    expiry.hidden = !isOpen || !r.expires_at;
    if (r.expires_at) countdown.textContent = fmtLeft(Date.parse(r.expires_at) - ctx.serverNow());
    cancel.hidden = !isOpen;
    cancel.disabled = busy || !ctx.online();
    dismiss.hidden = isOpen;
    thread.setOpen(isOpen);
    thread.render();
    let text = "";
    const s = r.session_id && ctx.store.state.sessions.get(r.session_id);
    open.hidden = !(r.status === "accepted" && s && s.status === "active");
    if (r.status === "accepted") {
      const who = entry.expert || (s && s.expert);
      const name = who && who.name ? who.name : "an expert";
      text = s && s.status === "scheduled" ? `Booked by ${name} for ${fmtTime(s.scheduled_at)} — see Upcoming Sessions.`
        : `Accepted by ${name}` + (s ? ` — the session is ${s.status}` : "") + ".";
    } else if (r.status === "declined") text = "The expert declined this direct request.";
    else if (r.status === "expired") text = "No expert accepted in time. Try again, maybe with other skills.";
    else if (r.status === "cancelled") text = "You cancelled this request.";
    outcome.textContent = text;
    outcome.hidden = !text;
  }
  return { el, update };
}

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const list = h("div", { testid: "requests" });
  const active = h("div", { testid: "active-sessions" });
  root.append(h("section", { class: "grid2" },
    requestForm(ctx).el,
    h("div", {},
      h("h2", {}, "Active sessions"), active,
      h("h2", {}, "My requests"), list,
      h("p", { class: "small muted" }, "Booked sessions are in ", h("a", { href: "#/upcoming" }, "Upcoming Sessions"), "."))));
  /** @type {Map<string, {el: HTMLElement, update: () => void}>} */
  const cards = new Map();
  function render() {
    const { requests } = ctx.store.state;
    for (const id of cards.keys()) {
      const e = requests.get(id);
      if (!e) cards.delete(id);
    }
    const els = [];
    for (const [id, e] of [...requests.entries()].reverse()) {
      const c0 = cards.get(id);
      if (!c0 || /** @type {any} */ (c0).placeholder !== e.placeholder) {
        const c = requestCard(ctx, id);
        /** @type {any} */ (c).placeholder = e.placeholder;
        cards.set(id, c);
      }
      const c = /** @type {any} */ (cards.get(id));
      c.update();
      els.push(c.el);
    }
    if (!els.length) els.push(h("p", { class: "empty" }, "No open requests."));
    fill(list, els);
    renderActive(ctx, active);
  }
  const off = ctx.store.subscribe((_s, changed) => {
    if (["requests", "sessions", "threads", "conn"].some((k) => changed.has(k))) render();
  });
  render();
  return { unmount: off, tick() { for (const c of cards.values()) c.update(); }, refresh: render };
}
