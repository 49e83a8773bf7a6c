// @ts-check
// A session room (customer and expert): transcript kept by seq, an outbox of messages not yet
// acknowledged (resent with the same cid after a reconnect), text, code and attachments,
// typing, who is here, billing (the expert starts and pauses it; time and amount so far), the
// end with a discount, recordings. The data lives in the connection's Channel; this is its view.
import { h, fill, showError, showStatus, dl, confirmBox } from "../dom.js";
import { fmtClock, fmtLeft, fmtMinSec, fmtSize, dollars } from "../format.js";
import { markJoined, applySessionUpdate } from "../store.js";
import { attachmentLink, messageBody, messageItem } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const TYPING_EVERY_MS = 3000;   // send `typing` at most this often
const TYPING_SHOWN_MS = 4000;   // "X is typing…" stays this long after a typing event
// A frame over the server's --max-frame (default 65536 bytes) closes the socket, and the
// resend after reconnecting would close it again: such a message is refused here instead.
const MAX_FRAME_BYTES = 65536 - 1024;
const CODE_LANGUAGES = ["text", "bash", "c", "c#", "c++", "css", "go", "html", "java", "javascript",
  "json", "kotlin", "php", "python", "ruby", "rust", "sql", "swift", "typescript", "yaml"];

/**
 * What a room remembers while the page lives (billing as last told, a notice, the summary).
 * @type {Map<string, {billing: {running: boolean, seconds: number, since: number}, notice: string, summary: any, ended: boolean}>}
 */
const memory = new Map();

/** @param {string} id */
function remembered(id) {
  let m = memory.get(id);
  if (!m) memory.set(id, (m = { billing: { running: false, seconds: 0, since: Date.now() }, notice: "", summary: null, ended: false }));
  return m;
}

/** Forget every room (sign out). */
export function forgetRooms() { memory.clear(); }

/**
 * @param {HTMLElement} root @param {{id: string, joinReply?: any}} params @param {Ctx} ctx
 */
export function mount(root, params, ctx) {
  const conn = ctx.conn;
  if (!conn) return {};
  const id = params.id;
  const ch = conn.channel(id);
  const mem = remembered(id);
  const isExpert = ctx.role() === "expert";
  /** @type {any} */
  let session = ctx.store.state.sessions.get(id) || null;
  /** @type {Set<string>} */
  let present = new Set();
  /** @type {Map<string, {name: string, timer: any}>} */
  const typingNow = new Map();
  let typingSentAt = 0;
  let busy = false;
  let endingHere = false;
  /** @type {any[]} */
  let recordingsList = [];
  ctx.store.set({ openRoom: id });

  // ----- header -----
  const title = h("h2", { tabindex: "-1", testid: "room-title" });
  const status = h("span", { class: "pill", testid: "room-status" });
  const withWhom = h("span", {});
  const rate = h("span", {});
  const people = h("ul", { class: "people", "aria-label": "Who is in the room", testid: "room-people" });
  const back = h("button", { type: "button", testid: "room-back", onclick: () => history.length > 1 ? history.back() : ctx.navigate(ctx.home()) }, "← Back");
  const waiting = h("p", { class: "notice", role: "status", hidden: true, testid: "room-waiting" });
  const details = h("a", { href: "#/sessions/" + encodeURIComponent(id), testid: "room-details", hidden: true }, "View details");
  const head = h("article", { class: "card" },
    h("div", { class: "room-head" }, back, title, status, details),
    h("div", { class: "meta" }, withWhom, rate),
    people, waiting);

  // ----- chat -----
  const transcript = h("ol", { class: "transcript", "aria-label": "Transcript", "aria-live": "polite", testid: "room-transcript" });
  const noMessages = h("li", { class: "empty" }, "No messages yet.");
  const outbox = h("ol", { class: "outbox", "aria-label": "Messages being sent", testid: "room-outbox" });
  const typing = h("p", { class: "typing", testid: "room-typing" });
  const modeText = /** @type {HTMLInputElement} */ (h("input", { type: "radio", name: "mode-" + id, value: "text", checked: true, testid: "mode-text" }));
  const modeCode = /** @type {HTMLInputElement} */ (h("input", { type: "radio", name: "mode-" + id, value: "code", testid: "mode-code" }));
  const language = /** @type {HTMLInputElement} */ (h("input", { type: "text", maxlength: "32", list: "code-languages", value: "javascript",
    placeholder: "language", "aria-label": "Code language", class: "lang-input", hidden: true, testid: "code-language" }));
  const TEXT_HINT = "Write a message… (Enter sends, Shift+Enter for a new line)";
  const CODE_HINT = "Paste or write code… (Ctrl+Enter sends)";
  const text = /** @type {HTMLTextAreaElement} */ (h("textarea", { rows: "2", maxlength: "8000", "aria-label": "Message", placeholder: TEXT_HINT, testid: "message-input" }));
  const code = /** @type {HTMLTextAreaElement} */ (h("textarea", { class: "mono", maxlength: "60000", spellcheck: "false", "aria-label": "Code",
    placeholder: CODE_HINT, hidden: true, testid: "code-input" }));
  const fileInput = /** @type {HTMLInputElement} */ (h("input", { type: "file", hidden: true, "aria-hidden": "true", tabindex: "-1", testid: "attach-input" }));
  const attach = /** @type {HTMLButtonElement} */ (h("button", { type: "button", testid: "attach" }, "Attach file"));
  const send = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "message-send" }, "Send"));
  const offline = h("span", { class: "muted small" }, "Offline: messages are sent once the connection is back.");
  const composer = h("form", { class: "composer", "aria-label": "Write a message" },
    h("div", { class: "row" },
      h("fieldset", { class: "modes" }, h("legend", {}, "Send"),
        h("label", {}, modeText, "Text"), h("label", {}, modeCode, "Code")),
      language),
    text, code,
    h("div", { class: "row actions" }, attach, fileInput, offline, h("span", { class: "spacer" }), send));
  const chat = h("section", { class: "card", "aria-label": "Chat" }, transcript, outbox, typing, composer);
  const codeList = h("datalist", { id: "code-languages" }, CODE_LANGUAGES.map((l) => h("option", { value: l })));

  // ----- billing -----
  const billingState = h("strong", { testid: "billing-state" });
  const clock = h("span", { class: "clock", role: "timer", "aria-label": "Billable time", testid: "billing-clock" });
  const amount = h("strong", { testid: "billing-amount" });
  const startBilling = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "button", testid: "billing-start" }, "Start billing"));
  const pauseBilling = /** @type {HTMLButtonElement} */ (h("button", { type: "button", testid: "billing-pause" }, "Pause billing"));
  const startHint = h("p", { class: "hint" }, "Avoid starting billable time until you are sure that you can help.");
  const notice = h("p", { class: "notice", role: "status", testid: "billing-notice" });
  const billing = h("section", { class: "card", "aria-label": "Billing" },
    h("h3", {}, "Billing"),
    h("p", { class: "row" }, billingState, h("span", { class: "muted" }, "Billable time"), clock),
    h("p", { class: "row" }, h("span", { class: "muted" }, "Amount so far"), amount,
      h("span", { class: "hint" }, "(at the rate, before any discount)")),
    isExpert ? h("div", {}, h("div", { class: "row actions" }, startBilling, pauseBilling), startHint) : null,
    notice);

  // ----- the end -----
  const discount = /** @type {HTMLInputElement} */ (h("input", { type: "number", min: "0", max: "100", step: "1", value: "0",
    id: "discount-" + id, class: "narrow", testid: "end-discount" }));
  const free = h("button", { type: "button", testid: "end-free", onclick: () => { discount.value = "100"; } }, "Free (100%)");
  const endButton = /** @type {HTMLButtonElement} */ (h("button", { class: "danger", type: "button", testid: "end-session" }, "End session…"));
  const confirm = confirmBox("Yes, end the session", "Keep going", "end-confirm");
  const endForm = h("div", {},
    isExpert ? [
      h("label", { for: "discount-" + id }, "Discount ", h("span", { class: "hint" }, "(0–100 %)")),
      h("div", { class: "row" }, discount, "%", free),
      h("p", { class: "hint" }, "If you are unable to help, courteously end the session and try to discount " +
        "or offer the session for no charge."),
    ] : null,
    h("div", { class: "row actions" }, endButton), confirm.el);
  const summary = h("div", { role: "status", testid: "room-summary" });
  const endTitle = h("h3", {}, "End session");
  const end = h("section", { class: "card", "aria-label": "End of the session" }, endTitle, endForm, summary);

  // ----- recordings -----
  const recordings = h("ul", { class: "files", "aria-label": "Recordings", testid: "recordings" });
  const recordingInput = /** @type {HTMLInputElement} */ (h("input", { type: "file", hidden: true, "aria-hidden": "true", tabindex: "-1", testid: "recording-input" }));
  const recordingButton = h("button", { type: "button", testid: "recording-upload", onclick: () => recordingInput.click() }, "Upload recording");
  const refreshRecordings = h("button", { type: "button", onclick: () => loadDetails() }, "Refresh");
  const recordingBox = h("section", { class: "card", "aria-label": "Recordings" },
    h("h3", {}, "Recordings"), recordings, h("div", { class: "row" }, recordingButton, refreshRecordings, recordingInput));

  root.append(codeList, head, h("div", { class: "room-grid" }, chat, h("div", {}, billing, end, recordingBox)));

  // ----- behaviour -----
  const mode = () => (modeCode.checked ? "code" : "text");
  function setMode() {
    const isCode = mode() === "code";
    code.hidden = language.hidden = !isCode;
    text.hidden = isCode;
    (isCode ? code : text).focus();
  }
  modeText.addEventListener("change", setMode);
  modeCode.addEventListener("change", setMode);

  /** @param {Record<string, any>} fields @param {any} [attachment] */
  function queue(fields, attachment) {
    const frame = JSON.stringify({ type: "message.send", id: 0, session_id: id, cid: "x".repeat(36), ...fields });
    if (new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
      showError({ code: "too_large", message: "this message is too large to send; attach it as a file instead" }, "Sending");
      return false;
    }
    ch.send(fields, attachment);
    return true;
  }
  function submit() {
    if (mem.ended) return;
    if (mode() === "code") {
      if (!code.value.trim()) return;
      if (queue({ kind: "code", code: { language: language.value.trim() || "text", source: code.value } })) code.value = "";
    } else {
      const value = text.value.trim();
      if (!value) return;
      if (queue({ kind: "text", text: value })) text.value = "";
    }
  }
  composer.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); } });
  code.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); } });
  function noteTyping() {
    const now = Date.now();
    if (mem.ended || !ctx.online() || now - typingSentAt < TYPING_EVERY_MS) return;
    typingSentAt = now;
    ctx.call("typing", { session_id: id }).catch(() => { /* a lost hint is harmless */ });
  }
  text.addEventListener("input", noteTyping);
  code.addEventListener("input", noteTyping);
  attach.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (file) upload(file, "file");
  });
  recordingInput.addEventListener("change", () => {
    const file = recordingInput.files && recordingInput.files[0];
    recordingInput.value = "";
    if (file) upload(file, "recording");
  });

  /** @param {File} file @param {"file"|"recording"} kind */
  async function upload(file, kind) {
    showStatus(`Uploading ${kind === "recording" ? "recording " : ""}“${file.name}” (${fmtSize(file.size)})…`);
    const form = new FormData();
    form.append("session_id", id);
    form.append("kind", kind);
    form.append("file", file, file.name);
    try {
      const { attachment } = await ctx.api.api("POST", "/api/attachments", form);
      if (kind === "file") { showStatus(""); queue({ kind: "attachment", attachment_id: attachment.id }, attachment); }
      else { showStatus(`Recording “${file.name}” uploaded.`); loadDetails(); }
    } catch (err) { showError(/** @type {any} */ (err), `Uploading “${file.name}”`); }
  }

  // Billing ticks locally while running; every billing event or reply corrects it.
  /** @param {{running?: boolean, billable_seconds?: number}} b */
  function setBilling(b) {
    const seconds = Number.isInteger(b.billable_seconds) ? /** @type {number} */ (b.billable_seconds) : billableNow();
    mem.billing = { running: !!b.running, seconds, since: Date.now() };
    if (b.running) mem.notice = "";
  }
  function billableNow() {
    const b = mem.billing;
    return b.seconds + (b.running ? Math.floor((Date.now() - b.since) / 1000) : 0);
  }
  /** @param {boolean} run */
  async function setRunning(run) {
    busy = true; update();
    const r = await ctx.act(run ? "billing.start" : "billing.pause", { session_id: id }, run ? "Start billing" : "Pause billing");
    if (r && r.billing) setBilling(r.billing);
    busy = false; update();
  }
  startBilling.addEventListener("click", () => setRunning(true));
  pauseBilling.addEventListener("click", () => setRunning(false));

  endButton.addEventListener("click", () => {
    let pct = 0;
    if (isExpert) {
      pct = Number(discount.value);
      if (!Number.isInteger(pct) || pct < 0 || pct > 100) {
        showStatus("The discount is a whole number from 0 to 100.", "error");
        discount.focus();
        return;
      }
    }
    confirm.ask(isExpert
      ? `End the session now${pct === 100 ? ", free of charge" : pct ? ` with a ${pct} % discount` : ""}? Chat and billing stop for both of you.`
      : "End the session now? Chat and billing stop for both of you.", () => endSession(pct));
  });
  /** @param {number} pct */
  async function endSession(pct) {
    /** @type {Record<string, any>} */
    const fields = { session_id: id };
    if (isExpert) fields.discount_pct = pct;
    endingHere = true;
    busy = true; update();
    const r = await ctx.act("session.end", fields, "Ending the session");
    endingHere = false;
    busy = false;
    if (r && r.summary) ended(r.summary);
    update();
  }

  /** @param {any} s */
  function sessionChanged(s) {
    session = { ...(session || {}), ...s };
    if (s.status === "ended" || s.status === "cancelled") {
      if (!mem.ended && !endingHere && s.status === "ended") {
        showStatus(`${(other() || {}).name || "The other participant"} ended the session “${s.title}”.`);
      }
      ended(s.summary);
    } else if (s.billing && s.billing.running !== mem.billing.running) {
      setBilling({ running: s.billing.running });
    }
    update();
  }
  /** @param {any} sum */
  function ended(sum) {
    if (sum) mem.summary = sum;
    if (mem.ended) return;
    mem.ended = true;
    mem.billing = { running: false, seconds: sum ? sum.billable_seconds : billableNow(), since: Date.now() };
    ch.close();
    for (const uid of [...typingNow.keys()]) stopTyping(uid);
    ctx.store.update(["sessions"], (st) => { st.sessions.delete(id); });
  }
  const other = () => session ? (isExpert ? session.customer : session.expert) : null;

  async function loadDetails() {
    try {
      const { session: s } = await ctx.api.get("/api/sessions/" + encodeURIComponent(id));
      recordingsList = s.recordings || [];
      renderRecordings();
      sessionChanged(s);
    } catch (err) { showError(/** @type {any} */ (err), "Loading the session"); }
  }

  // ----- typing -----
  /** @param {any} person */
  function showTyping(person) {
    stopTyping(person.id, false);
    const timer = setTimeout(() => stopTyping(person.id), TYPING_SHOWN_MS);
    typingNow.set(person.id, { name: person.name || "Someone", timer });
    renderTyping();
  }
  /** @param {string} uid @param {boolean} [render] */
  function stopTyping(uid, render = true) {
    const t = typingNow.get(uid);
    if (!t) return;
    clearTimeout(t.timer);
    typingNow.delete(uid);
    if (render) renderTyping();
  }
  function renderTyping() {
    const names = [...typingNow.values()].map((t) => t.name);
    typing.textContent = names.length ? `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…` : "";
  }

  // ----- rendering -----
  function nearBottom() { return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40; }
  /** @param {any} m */
  function insertMessage(m) {
    const stick = nearBottom();
    noMessages.remove();
    const item = messageItem(ctx, m);
    let before = null;
    for (let li = /** @type {HTMLElement|null} */ (transcript.lastElementChild); li && Number(li.dataset.seq) > m.seq;
      li = /** @type {HTMLElement|null} */ (li.previousElementSibling)) before = li;
    transcript.insertBefore(item, before);
    if (m.from) stopTyping(m.from.id);
    if (stick || (m.from && m.from.id === ctx.me().id)) transcript.scrollTop = transcript.scrollHeight;
  }
  function renderTranscript() {
    transcript.replaceChildren(noMessages);
    for (const m of ch.list()) insertMessage(m);
  }
  function renderOutbox() {
    fill(outbox, [...ch.outbox.values()].map((entry) => {
      const f = entry.fields;
      const failed = !!entry.error;
      return h("li", { class: failed ? "failed mine" : "mine", testid: "outbox-entry" },
        h("div", { class: "msg-head row" }, h("span", { class: "from" }, "You"),
          h("span", { class: "state" }, failed && entry.error ? `Not sent — ${entry.error.code}: ${entry.error.message}` : "Sending…"),
          failed && !mem.ended ? [
            h("button", { type: "button", onclick: () => ch.retry(entry.cid) }, "Retry"),
            h("button", { type: "button", onclick: () => ch.discard(entry.cid) }, "Discard"),
          ] : null),
        messageBody(ctx, { kind: f.kind, text: f.text, code: f.code, attachment: entry.attachment }));
    }));
    if (ch.outbox.size) transcript.scrollTop = transcript.scrollHeight;
  }
  function renderRecordings() {
    fill(recordings, recordingsList.length ? recordingsList.map((a) => h("li", {}, attachmentLink(ctx, a)))
      : h("li", { class: "empty" }, "No recordings yet."));
  }
  function tick() {
    const seconds = billableNow();
    clock.textContent = fmtMinSec(seconds);
    const s = session;
    // The server's rule: rate per 15 min times the seconds, rounded half up to the cent.
    amount.textContent = dollars(Math.round(((s && s.rate_cents_per_15min) || 0) * seconds / 900));
    waiting.hidden = mem.ended || !s || s.status !== "scheduled";
    if (!waiting.hidden) {
      const left = Date.parse(s.scheduled_at) - ctx.serverNow();
      waiting.textContent = `Waiting for ${(other() || {}).name || "the other participant"} to join. ` +
        `The session begins when you are both here — scheduled for ${fmtClock(s.scheduled_at)}` +
        (left > 0 ? ` (in ${fmtLeft(left)}).` : ` (${fmtLeft(-left)} ago).`);
    }
  }
  function summaryView() {
    const s = mem.summary;
    if (!s) {
      const cancelled = session && session.status === "cancelled";
      return [h("p", {}, cancelled ? "The session was cancelled." : "The session has ended.")];
    }
    /** @type {[string, any][]} */
    const rows = [
      ["Billable time", fmtMinSec(s.billable_seconds)],
      [isExpert ? "Customer charged" : "Charge", dollars(s.charge_cents)],
      ["Discount", `${s.discount_pct} %`],
    ];
    if (isExpert) rows.push(["Your earnings", dollars(s.expert_earnings_cents)]);
    return [h("p", {}, h("strong", {}, "The session has ended.")), dl(rows, "summary-list"),
      h("p", {}, h("a", { href: "#/sessions/" + encodeURIComponent(id), testid: "summary-details" },
        isExpert ? "View details" : "View details, claim a refund or rate the session"))];
  }
  function update() {
    const s = session;
    const o = other();
    title.textContent = s ? s.title : "Session";
    const state = mem.ended ? (s && s.status === "cancelled" ? "cancelled" : "ended") : s ? s.status : "…";
    status.textContent = state;
    status.className = "pill " + state;
    details.hidden = !mem.ended;
    withWhom.textContent = `With ${o && o.name ? o.name : "…"}`;
    rate.textContent = s ? `Rate ${dollars(s.rate_cents_per_15min || 0)} / 15 min` : "";
    const persons = s ? [s.customer, s.expert].filter(Boolean) : [];
    const notYet = !!s && s.status === "scheduled";
    fill(people, persons.map((p) => {
      const here = notYet ? (s.joined || []).includes(p.id) : present.has(p.id);
      return h("li", { class: here ? "here" : "" }, p.id === ctx.me().id ? "You" : p.name || "?",
        notYet ? (here ? " — joined" : " — not joined yet") : here ? " — here" : " — not here");
    }));
    const online = ctx.online();
    billing.hidden = end.hidden = notYet;
    for (const c of [modeText, modeCode, language, text, code, send]) /** @type {any} */ (c).disabled = mem.ended || notYet;
    attach.disabled = mem.ended || notYet || !online;
    offline.hidden = online || mem.ended;
    const closedHint = mem.ended ? "The session has ended." : notYet ? "The chat opens when you have both joined." : "";
    text.placeholder = closedHint || TEXT_HINT;
    code.placeholder = closedHint || CODE_HINT;
    billingState.textContent = mem.ended ? "Billing ended" : mem.billing.running ? "Billing running" : "Billing paused";
    tick();
    startBilling.hidden = mem.ended || mem.billing.running;
    pauseBilling.hidden = mem.ended || !mem.billing.running;
    startHint.hidden = startBilling.hidden;
    startBilling.disabled = pauseBilling.disabled = busy || !online || notYet;
    notice.textContent = mem.notice;
    notice.hidden = !mem.notice;
    endForm.hidden = mem.ended || notYet;
    endTitle.textContent = mem.ended ? "Summary" : "End session";
    endButton.disabled = /** @type {any} */ (confirm.yes).disabled = busy || !online;
    fill(summary, mem.ended ? summaryView() : []);
  }

  // ----- the channel and the socket's events -----
  /** @param {any} r the ok of session.join */
  function applyJoin(r) {
    session = r.session;
    if (r.session.status === "scheduled" || r.session.status === "active") {
      ctx.store.update(["sessions"], (st) => { applySessionUpdate(st, r.session); markJoined(st, id, ctx.me().id); });
    }
    present = new Set(r.present || []);
    if (r.billing) {
      if (mem.billing.running && !r.billing.running) mem.notice = "Billing was paused while you were disconnected.";
      setBilling(r.billing);
    }
    if (r.session.status === "ended" || r.session.status === "cancelled") ended(r.session.summary);
    update();
  }
  const offs = [
    ch.on("message", (/** @type {any} */ m) => insertMessage(m)),
    ch.on("outbox", renderOutbox),
    ch.on("reload", () => transcript.replaceChildren(noMessages)),
    ch.on("joined", applyJoin),
    ch.on("error", (/** @type {any} */ e) => {
      if (e.code === "invalid_state") loadDetails();  // it ended or was cancelled meanwhile
      else showError(e, "Session");
    }),
    conn.on("event", (/** @type {any} */ f) => {
      const sid = f.session_id || (f.session && f.session.id);
      if (sid !== id) return;
      switch (f.type) {
        case "typing":
          if (f.from && f.from.id !== ctx.me().id) showTyping(f.from);
          break;
        case "room.presence":
          if (!f.user) break;
          if (f.present) present.add(f.user.id); else { present.delete(f.user.id); stopTyping(f.user.id); }
          if (f.present && session && session.status === "scheduled") session = { ...session, joined: [...new Set([...(session.joined || []), f.user.id])] };
          update();
          break;
        case "billing":
          setBilling(f);
          if (f.reason === "disconnected") {
            mem.notice = "Billing paused by itself: a participant was disconnected for too long. The expert can start it again.";
            showStatus("Billing paused: a participant was disconnected for too long.");
          }
          update();
          break;
        case "session.update":
          sessionChanged(f.session);
          break;
        case "session.cancelled":
          session = { ...(session || { id }), status: "cancelled" };
          ended(null);
          update();
          break;
      }
    }),
    conn.on("status", update),
  ];

  renderTranscript();
  renderOutbox();
  renderRecordings();
  update();
  title.focus();
  loadDetails();
  if (params.joinReply) ch.join(params.joinReply).catch(() => {});
  else if (!mem.ended) {
    ch.wanted = true;
    if (ctx.online()) {
      ch.join().catch((err) => {
        if (err.code === "invalid_state") loadDetails();
        else if (!["offline", "disconnected", "timeout"].includes(err.code)) showError(err, "Joining the session");
      });
    }
  }

  return {
    tick,
    refresh: loadDetails,
    unmount() {
      for (const off of offs) off();
      for (const t of typingNow.values()) clearTimeout(t.timer);
      ch.leave();
      ctx.store.set({ openRoom: null });
    },
  };
}
