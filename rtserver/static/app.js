// @ts-check
// Boot, the router (by hash), the header, and what the socket's events do to the state.
import * as api from "./api.js";
import { Connection, CommandError } from "./conn.js";
import {
  Store, applyState, mergeRequest, applyRequestUpdate, addRequestMessage, markOfferGone,
  applySessionUpdate, markJoined, noteCancelled,
} from "./store.js";
import { h, $, fill, showStatus, showError, toast } from "./dom.js";
import { fmtTime, fmtClock, fmtBefore, dollars, CLAIM_TEXT } from "./format.js";
import * as loginView from "./views/login.js";
import * as offersView from "./views/offers.js";
import * as requestsView from "./views/requests.js";
import * as preferencesView from "./views/preferences.js";
import * as roomView from "./views/room.js";
import * as upcomingView from "./views/upcoming.js";
import * as historyView from "./views/history.js";
import * as detailsView from "./views/details.js";
import * as earningsView from "./views/earnings.js";
import * as payoutView from "./views/payout.js";
import * as expertView from "./views/expert.js";
import * as receiptsView from "./views/receipts.js";
import * as managerView from "./views/manager.js";
import { setupNotifications } from "./views/notifications.js";
import { cancelText, isStarting } from "./views/upcoming.js";

/**
 * What a view gets.
 * @typedef {{
 *   store: Store, api: typeof api, readonly conn: Connection|null,
 *   me: () => any, role: () => string|null, online: () => boolean, serverNow: () => number,
 *   call: (type: string, fields?: Record<string, any>) => Promise<any>,
 *   act: (type: string, fields: Record<string, any>, what?: string) => Promise<any>,
 *   navigate: (hash: string) => void, openRoom: (id: string, joinReply?: any) => void,
 *   signIn: (token: string, user: any) => void, signOut: (message?: string) => void,
 *   refreshView: () => void, offerGone: (requestId: string, reason: string) => void,
 *   cancellingHere: Set<string>, home: () => string,
 * }} Ctx
 * @typedef {{unmount?: () => void, refresh?: () => void, tick?: () => void}} Mounted
 * @typedef {(root: HTMLElement, params: any, ctx: Ctx) => Mounted} MountFn
 */

const store = new Store();
/** @type {Connection|null} */
let conn = null;
/** @type {Mounted|null} */
let current = null;
/** session id → the ok of a session.join sent before opening its room */
const pendingJoins = new Map();
const cancellingHere = new Set();

/** @type {Ctx} */
const ctx = {
  store,
  api,
  get conn() { return conn; },
  me: () => store.state.user || { id: "" },
  role: () => (store.state.user ? store.state.user.role : null),
  online: () => !!conn && conn.ready,
  serverNow: () => (conn ? conn.serverNow() : Date.now()),
  call: (type, fields = {}) => conn ? conn.call(type, fields)
    : Promise.reject(new CommandError({ code: "offline", message: "not connected to the server" })),
  async act(type, fields, what) {
    try { return await ctx.call(type, fields); } catch (err) { showError(/** @type {any} */ (err), what || type); return null; }
  },
  navigate(hash) { if (location.hash === hash) route(); else location.hash = hash; },
  openRoom(id, joinReply) {
    if (store.state.openRoom === id) return;  // on screen and joined already
    if (joinReply) pendingJoins.set(id, joinReply);
    ctx.navigate("#/room/" + id);
  },
  signIn,
  signOut,
  refreshView() { if (current && current.refresh) current.refresh(); },
  offerGone,
  cancellingHere,
  home: () => homeFor(ctx.role()),
};

// ---------- routes ----------------------------------------------------------------------

/** @param {string|null} role */
function homeFor(role) {
  return role === "expert" ? "#/requests" : role === "customer" ? "#/ask" : role === "manager" ? "#/manager/claims" : "#/login";
}

const ANY = ["expert", "customer", "manager"];
/** @type {{re: RegExp, roles: string[]|null, mount: (root: HTMLElement, m: RegExpMatchArray, q: URLSearchParams) => Mounted}[]} */
const ROUTES = [
  { re: /^login$/, roles: null, mount: (r) => loginView.mount(r, {}, ctx) },
  { re: /^experts$/, roles: null, mount: (r, _m, q) => expertView.mountList(r, { query: q }, ctx) },
  { re: /^experts\/([^/]+)$/, roles: null, mount: (r, m) => expertView.mount(r, { id: decodeURIComponent(m[1]) }, ctx) },
  { re: /^requests$/, roles: ["expert"], mount: (r) => offersView.mount(r, {}, ctx) },
  { re: /^ask$/, roles: ["customer"], mount: (r) => requestsView.mount(r, {}, ctx) },
  { re: /^upcoming$/, roles: ["expert", "customer"], mount: (r) => upcomingView.mount(r, {}, ctx) },
  { re: /^history(?:\/(disputed|all))?$/, roles: ANY, mount: (r, m, q) => historyView.mount(r, { tab: m[1], query: q }, ctx) },
  { re: /^sessions\/([^/]+)$/, roles: ANY, mount: (r, m, q) => detailsView.mount(r, { id: decodeURIComponent(m[1]), query: q }, ctx) },
  {
    re: /^room\/([^/]+)$/, roles: ["expert", "customer"], mount: (r, m) => {
      const id = decodeURIComponent(m[1]);
      const joinReply = pendingJoins.get(id);
      pendingJoins.delete(id);
      return roomView.mount(r, { id, joinReply }, ctx);
    },
  },
  { re: /^earnings(?:\/(earnings|summary|transactions))?$/, roles: ["expert"], mount: (r, m) => earningsView.mount(r, { tab: m[1] }, ctx) },
  { re: /^transactions(?:\/(earnings|summary|transactions))?$/, roles: ["customer"], mount: (r, m) => earningsView.mount(r, { tab: m[1] || "transactions" }, ctx) },
  { re: /^receipts$/, roles: ["customer"], mount: (r) => receiptsView.mount(r, {}, ctx) },
  { re: /^payout$/, roles: ["expert"], mount: (r) => payoutView.mount(r, {}, ctx) },
  { re: /^preferences$/, roles: ["expert"], mount: (r) => preferencesView.mount(r, {}, ctx) },
  { re: /^manager(?:\/(claims|experts|users|audit|payouts|dead-letters))?$/, roles: ["manager"], mount: (r, m) => managerView.mount(r, { tab: m[1] }, ctx) },
];

const NAV = /** @type {Record<string, [string, string][]>} */ ({
  expert: [["requests", "New Requests"], ["upcoming", "Upcoming Sessions"], ["history", "Session History"],
    ["earnings", "My Earnings"], ["payout", "Payout Profile"], ["preferences", "My Preferences"]],
  customer: [["ask", "Ask for Help"], ["upcoming", "Upcoming Sessions"], ["history", "Session History"],
    ["receipts", "Receipts"], ["transactions", "Transactions"], ["experts", "Experts"]],
  manager: [["manager/claims", "Claims"], ["manager/experts", "Experts"], ["manager/users", "Users"],
    ["manager/audit", "Audit log"], ["manager/payouts", "Payouts"], ["history", "Sessions"]],
  none: [["login", "Sign in"], ["experts", "Experts"]],
});

let currentPath = "";

function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?", 2);
  const query = new URLSearchParams(qs || "");
  const role = ctx.role();
  if (!path || (path === "login" && role)) { location.replace(homeFor(role)); return; }
  const found = ROUTES.map((r) => ({ r, m: path.match(r.re) })).find((x) => x.m);
  if (!found || (found.r.roles && (!role || !found.r.roles.includes(role)))) {
    if (!role && found) showStatus("Please sign in first.");
    location.replace(homeFor(role));
    return;
  }
  if (current && current.unmount) { try { current.unmount(); } catch (e) { console.error(e); } }
  current = null;
  const root = $("view");
  root.replaceChildren();
  root.dataset.view = path.split("/")[0];
  currentPath = path;
  try {
    current = found.r.mount(root, /** @type {RegExpMatchArray} */ (found.m), query);
  } catch (e) {
    console.error(e);
    fill(root, h("p", { class: "empty" }, "This page failed to load."));
  }
  renderNav();
  window.scrollTo(0, 0);
}

// ---------- the header -------------------------------------------------------------------

function renderNav() {
  const role = ctx.role() || "none";
  const st = store.state;
  const live = [...st.offers.values()].filter((e) => !e.gone).length;
  const upcoming = [...st.sessions.values()].filter((s) => s.status === "scheduled" || s.status === "active").length;
  const counts = /** @type {Record<string, number>} */ ({ requests: live, upcoming });
  const section = currentPath.split("/")[0];
  const nav = $("nav");
  fill(nav, (NAV[role] || NAV.none).map(([target, label]) => {
    const active = target === currentPath || target.split("/")[0] === section && (!target.includes("/") || currentPath.startsWith(target))
      || (target === "history" && section === "sessions");
    const n = counts[target];
    return h("a", { href: "#/" + target, class: active ? "active" : "", "aria-current": active ? "page" : null, testid: "nav-" + target.replace("/", "-") },
      label, n ? h("span", { class: "count" }, String(n)) : null);
  }));
  document.title = (role === "expert" && live ? `(${live}) ` : "") + "Live Help";
  const u = st.user;
  $("who").hidden = !u;
  $("who").textContent = u ? u.name : "";
  $("who").title = u ? `Signed in as ${u.name} (${u.role})` : "";
  $("who").dataset.role = u ? u.role : "";
  $("sign-out").hidden = !u;
  $("bell").hidden = !u;
  $("conn").hidden = !u || role === "manager";
  renderExpertBar();
}

function renderConn() {
  const el = $("conn");
  const s = store.state.conn;
  let text = "Connecting…", cls = "connecting";
  if (s.state === "online") { text = "Online"; cls = "online"; }
  else if (s.state === "offline") {
    const left = Math.max(0, Math.ceil(((s.retryAt || 0) - Date.now()) / 1000));
    const label = s.code === 1001 ? "Server restarting — reconnecting" : "Offline — reconnecting";
    text = s.reason === "network" ? "Offline — no network; messages are sent when it is back"
      : left > 0 ? `${label} in ${left} s` : `${label}…`;
    cls = "offline";
  } else if (s.state === "stopped") { text = "Disconnected"; cls = "offline"; }
  el.className = "conn " + cls;
  el.textContent = text;
  el.dataset.state = s.state;
}

function renderExpertBar() {
  const bar = $("expert-bar");
  const u = store.state.user;
  bar.hidden = !u || u.role !== "expert";
  if (bar.hidden) return;
  const btn = /** @type {HTMLButtonElement} */ ($("presence"));
  const on = store.state.presence === "available";
  btn.setAttribute("aria-pressed", String(on));
  btn.textContent = on ? "Available" : "Away";
  btn.disabled = !ctx.online();
  $("my-id").textContent = u.id;
}

// ---------- the socket's events -------------------------------------------------------------

/** @param {string} requestId @param {string} reason */
function offerGone(requestId, reason) {
  let entry = null;
  store.update(["offers"], (s) => { entry = markOfferGone(s, requestId, reason); });
  if (!entry) return;
  const e = entry;
  setTimeout(() => { if (store.state.offers.get(requestId) === e) store.update(["offers"], (s) => { s.offers.delete(requestId); }); }, 5000);
}

/** What the server says about a request now; used when we missed its events. @param {string} id @param {boolean} [drop] */
async function refreshRequest(id, drop = false) {
  try {
    const data = await api.get("/api/requests/" + encodeURIComponent(id));
    store.update(["requests"], (s) => {
      const entry = s.requests.get(id);
      mergeRequest(s, data.request, false);
      const e = s.requests.get(id);
      if (e && entry) e.expert = entry.expert;
    });
  } catch (e) {
    if (drop) store.update(["requests"], (s) => { s.requests.delete(id); });
  }
}

const CLAIM_STEP = /** @type {Record<string, (c: any, me: string) => string>} */ ({
  claimed: (c, me) => c.customer && c.customer.id === me ? `Your refund claim on “${c.session_title}” was sent.`
    : `${c.customer ? c.customer.name : "The customer"} claims a refund of ${dollars(c.amount_cents)} for “${c.session_title}”. You may dispute it.`,
  disputed: (c, me) => c.expert && c.expert.id === me ? `You disputed the refund claim on “${c.session_title}”.`
    : `${c.expert ? c.expert.name : "The expert"} disputed your refund claim on “${c.session_title}”.`,
  decided: (c) => `The refund claim on “${c.session_title}” was decided: ${CLAIM_TEXT[c.status] || c.status}.`,
});

/** @type {Record<string, (f: any) => void>} */
const EVENTS = {
  state(f) {
    let missing = /** @type {string[]} */ ([]);
    store.update(["offers", "requests", "sessions", "presence"], (s) => { missing = applyState(s, f); });
    for (const id of missing) refreshRequest(id, true);
    if (f.resync) showStatus("The connection was restored; the page was brought up to date.");
  },
  "offer.new"(f) {
    store.update(["offers"], (s) => { s.offers.set(f.offer.request_id, { offer: f.offer, gone: null }); });
    if (!currentPath.startsWith("requests")) toast(`New ${f.offer.kind} request: “${f.offer.title}”.`, "info", 10000);
  },
  "offer.revoked"(f) { offerGone(f.request_id, f.reason); },
  "request.update"(f) {
    let unknown = false;
    store.update(["requests"], (s) => { unknown = applyRequestUpdate(s, f); });
    if (unknown) setTimeout(() => { const e = store.state.requests.get(f.request_id); if (e && e.placeholder) refreshRequest(f.request_id); }, 1500);
    const e = store.state.requests.get(f.request_id);
    if (!e || f.status !== "accepted") return;
    const booked = f.session_id && store.state.sessions.get(f.session_id);
    const scheduled = e.req.kind === "scheduled" || (booked && booked.status === "scheduled");
    const who = e.expert ? e.expert.name : "An expert";
    showStatus(scheduled ? `${who} booked “${e.req.title}”${booked ? " for " + fmtTime(booked.scheduled_at) : ""}.` : `${who} accepted “${e.req.title}”.`);
    if (f.session_id && !scheduled && !store.state.openRoom) ctx.openRoom(f.session_id);
  },
  "request.message"(f) { store.update(["threads"], (s) => { addRequestMessage(s, f); }); },
  "session.update"(f) {
    const x = f.session;
    let before = null;
    let cancelled = null;
    store.update(["sessions", "cancelled", "offers"], (s) => {
      if (x.status === "cancelled" && x.cancellation) cancelled = noteCancelled(s, x.id, x.cancellation, x, cancellingHere.has(x.id));
      before = applySessionUpdate(s, x);
      // Accepted here or on another device of ours: its offer is done.
      if (x.request_id) s.offers.delete(x.request_id);
    });
    if (cancelled) toast(cancelText(ctx, cancelled), "cancelled");
    const b = /** @type {any} */ (before);
    if (x.status === "active" && b && b.status === "scheduled" && !isStarting(x.id)) {
      if (store.state.openRoom === x.id) showStatus(`“${x.title}” has started: you are both here.`);
      else if (!store.state.openRoom) { ctx.openRoom(x.id); showStatus(`“${x.title}” has started.`); }
      else showStatus(`“${x.title}” has started. Open it from Upcoming Sessions.`);
    }
  },
  "session.cancelled"(f) {
    let cancelled = null;
    store.update(["sessions", "cancelled"], (s) => {
      cancelled = noteCancelled(s, f.session_id, f, s.sessions.get(f.session_id), cancellingHere.has(f.session_id));
      s.sessions.delete(f.session_id);
    });
    if (cancelled) toast(cancelText(ctx, cancelled), "cancelled");
  },
  reminder(f) {
    const s = store.state.sessions.get(f.session_id);
    toast(`Session “${s ? s.title : "your session"}” starts in ${fmtBefore(f.seconds_before)} (at ${fmtClock(f.starts_at)}).`, "reminder", 60000);
    notifications.load();
  },
  message(f) {
    const mine = f.from && f.from.id === ctx.me().id;
    if (!mine && store.state.openRoom !== f.session_id) {
      const s = store.state.sessions.get(f.session_id);
      showStatus(`New message from ${f.from ? f.from.name : "?"}${s ? ` in “${s.title}”` : ""}.`);
    }
  },
  "room.presence"(f) {
    if (f.user && f.present) store.update(["sessions"], (s) => { markJoined(s, f.session_id, f.user.id); });
  },
  "claim.update"(f) {
    const text = (CLAIM_STEP[f.step] || CLAIM_STEP.decided)(f.claim, ctx.me().id);
    toast(text, "claim");
    notifications.load();
    ctx.refreshView();
  },
  "review.new"(f) {
    const r = f.review;
    toast(`New review: ${r.stars} ★ from ${r.customer ? r.customer.name : "a customer"}${r.comment ? ` — “${r.comment}”` : ""}.`, "review");
    notifications.load();
    ctx.refreshView();
  },
  "verification.update"(f) {
    toast(`Your verification status is now ${f.verification_status}.`, "verification");
    notifications.load();
    ctx.refreshView();
  },
  "payout.sent"(f) {
    const p = f.payout;
    toast(`Payout sent: ${dollars(p.amount_cents)} for ${p.period}.`, "payout");
    notifications.load();
    ctx.refreshView();
  },
};

// ---------- sign in and out ------------------------------------------------------------------

const notifications = setupNotifications(ctx);

/** @param {string} token @param {any} user */
function signIn(token, user) {
  localStorage.setItem("rt.token", token);
  localStorage.setItem("rt.user", JSON.stringify(user));
  start(token, user);
  location.hash = homeFor(user.role);
}

/** @param {string} token @param {any} user */
function start(token, user) {
  api.setToken(token);
  store.set({ token, user });
  if (user.role !== "manager") {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const c = new Connection({ url, token });
    conn = c;
    c.on("status", (/** @type {any} */ s) => { if (conn === c) { store.set({ conn: s }); renderConn(); renderExpertBar(); } });
    c.on("hello", (/** @type {any} */ reply) => {
      if (conn !== c) return;
      if (reply.user) {
        const merged = { ...store.state.user, ...reply.user };
        localStorage.setItem("rt.user", JSON.stringify(merged));
        store.set({ user: merged });
      }
      notifications.load();
    });
    c.on("event", (/** @type {any} */ f) => {
      if (conn !== c) return;
      const handler = EVENTS[f.type];
      if (handler) { try { handler(f); } catch (e) { console.error(e); } }
    });
    c.on("error", (/** @type {any} */ f) => showError(f));
    c.on("unauthorized", () => signOut("Your sign-in is no longer valid. Please sign in again."));
    c.on("suspended", () => signOut("Your account has been suspended. Contact support if you think this is a mistake."));
    c.start();
  } else {
    notifications.load();
  }
  renderNav();
}

/** @param {string} [message] */
function signOut(message) {
  if (conn) { const c = conn; conn = null; c.stop(); }
  localStorage.removeItem("rt.token");
  localStorage.removeItem("rt.user");
  api.setToken(null);
  if (current && current.unmount) { try { current.unmount(); } catch (e) { console.error(e); } }
  current = null;
  roomView.forgetRooms();
  pendingJoins.clear();
  store.reset();
  $("toasts").replaceChildren();
  notifications.toggle(false);
  location.hash = "#/login";
  route();
  showStatus(message || "", message ? "error" : "info");
}

api.configure({
  onUnauthorized: () => signOut("Your sign-in has expired. Please sign in again."),
  onSuspended: () => signOut("Your account has been suspended."),
});

// ---------- boot --------------------------------------------------------------------------------

$("presence").addEventListener("click", async () => {
  const want = store.state.presence === "available" ? "away" : "available";
  const r = await ctx.act("presence", { status: want }, "Status change");
  if (r) store.set({ presence: r.status || want });
});
$("sign-out").addEventListener("click", () => { signOut(); showStatus("Signed out."); });
window.addEventListener("hashchange", route);
window.addEventListener("storage", (e) => { if (e.key === "rt.token" && !e.newValue && store.state.token) signOut("Signed out in another tab."); });
window.addEventListener("online", () => { if (conn) conn.reconnectNow(); });
window.addEventListener("offline", () => { if (conn) conn.networkLost(); });
store.subscribe((_s, changed) => {
  if (changed.has("offers") || changed.has("sessions") || changed.has("user")) renderNav();
  if (changed.has("presence")) renderExpertBar();
});
setInterval(() => {
  if (current && current.tick) { try { current.tick(); } catch (e) { console.error(e); } }
  if (store.state.conn.state === "offline") renderConn();
}, 1000);
$("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";

const savedToken = localStorage.getItem("rt.token");
let savedUser = null;
try { savedUser = JSON.parse(localStorage.getItem("rt.user") || "null"); } catch (e) { /* none */ }
if (savedToken && savedUser) start(savedToken, savedUser);
route();
