// @ts-check
// The bell and its panel: the dashboard's notifications (reminders, claims, reviews,
// verification, payouts), newest first; mark one or all as read.
import { h, fill, $, showError } from "../dom.js";
import { fmtTime, fmtClock, fmtBefore } from "../format.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const KIND_TEXT = /** @type {Record<string, string>} */ ({
  claim: "Refund claim", review: "New review", verification: "Verification", payout: "Payout", reminder: "Reminder",
});

/** @param {Ctx} ctx */
export function setupNotifications(ctx) {
  const bell = $("bell"), panel = $("notif-panel"), list = $("notif-list"), count = $("bell-count");
  const allRead = /** @type {HTMLButtonElement} */ ($("notif-all-read")), close = $("notif-close");
  let generation = 0;

  async function load() {
    if (!ctx.store.state.token) return;
    const gen = ++generation;
    try {
      const data = await ctx.api.get("/api/notifications");
      if (gen !== generation || !ctx.store.state.token) return;
      ctx.store.set({ notifications: data.notifications || [] });
    } catch (err) { if (ctx.store.state.token) showError(/** @type {any} */ (err), "Loading notifications"); }
  }

  /** @param {number[]} ids */
  async function markRead(ids) {
    for (const id of ids) {
      try {
        await ctx.api.post(`/api/notifications/${encodeURIComponent(id)}/read`, {});
        const n = ctx.store.state.notifications.find((x) => x.id === id);
        if (n) n.read = true;
      } catch (err) { showError(/** @type {any} */ (err), "Marking as read"); break; }
    }
    ctx.store.notify(["notifications"]);
  }

  /** @param {any} n */
  function item(n) {
    const reminder = n.kind === "reminder";
    const text = reminder ? `Session “${n.title}” starts at ${fmtTime(n.starts_at)}` : `${KIND_TEXT[n.kind] || n.kind}: ${n.title || ""}`;
    const sent = reminder && n.seconds_before != null ? `Reminder ${fmtBefore(n.seconds_before)} before, sent ` : "Sent ";
    const open = n.session_id ? h("a", { href: (reminder ? "#/upcoming" : "#/sessions/" + encodeURIComponent(n.session_id)),
      onclick: () => toggle(false) }, "Open") : null;
    return h("li", { class: n.read ? "" : "unread", testid: "notification" },
      h("div", {}, h("div", {}, text),
        h("div", { class: "small muted" }, sent, fmtClock(n.created_at), n.read ? " · read" : "", open ? " · " : "", open)),
      n.read ? null : h("button", { type: "button", onclick: () => markRead([n.id]), "aria-label": `Mark “${n.title}” as read` }, "Mark as read"));
  }

  function render() {
    const all = ctx.store.state.notifications;
    const unread = all.filter((n) => !n.read);
    count.hidden = !unread.length;
    count.textContent = String(unread.length);
    bell.setAttribute("aria-label", `Notifications, ${unread.length} unread`);
    bell.title = `Notifications (${unread.length} unread)`;
    allRead.disabled = !unread.length;
    fill(list, all.length ? all.map(item) : h("li", { class: "empty" }, "No notifications yet."));
  }

  /** @param {boolean} open */
  function toggle(open) {
    panel.hidden = !open;
    bell.setAttribute("aria-expanded", String(open));
    if (open) { load(); close.focus(); }
  }
  bell.addEventListener("click", () => toggle(panel.hidden));
  close.addEventListener("click", () => { toggle(false); bell.focus(); });
  allRead.addEventListener("click", () => markRead(ctx.store.state.notifications.filter((n) => !n.read).map((n) => n.id)));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !panel.hidden) { toggle(false); bell.focus(); } });
  ctx.store.subscribe((_s, changed) => { if (changed.has("notifications")) render(); });
  render();
  return { load, toggle };
}
