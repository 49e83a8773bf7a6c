// @ts-check
// The WebSocket connection, with no DOM in it (node --test runs it with a fake socket).
//
// - hello first, then replies matched by id, each with a timeout;
// - a ping every `heartbeat` seconds; an unanswered ping closes the socket and reconnects;
// - reconnect with jittered exponential backoff (1001, the server going away: at once, spread);
// - 4401: the token is no longer valid (back to login); 4403: the account is suspended
//   (never reconnect);
// - the browser going offline drops the socket at once (it may look open for a whole
//   heartbeat, and Chromium keeps an open socket through its offline mode) and waits for
//   the browser to be online again instead of retrying;
// - per session a Channel: messages kept by seq (so a message that arrives twice is kept
//   once), resumed after a reconnect with session.join after_seq, and an outbox keyed by
//   cid, sent again with the same cid after a reconnect (the server answers a known cid
//   with its first seq and stores nothing twice).

/**
 * @typedef {{id: string, name?: string, role?: string}} Person
 * @typedef {{session_id: string, seq: number, cid?: string|null, from?: Person|null, kind: string,
 *   text?: string|null, code?: {language: string, source: string}|null, attachment?: any, at?: string}} Message
 * @typedef {{type: string, [key: string]: any}} Frame
 * @typedef {{code: string, message: string, field?: string}} ErrorInfo
 * @typedef {{cid: string, fields: Record<string, any>, attachment: any, error: ErrorInfo|null}} OutboxEntry
 * @typedef {"idle"|"connecting"|"online"|"offline"|"stopped"} ConnState
 * @typedef {{state: ConnState, code?: number, attempt?: number, retryAt?: number, reason?: string}} StatusInfo
 * @typedef {{
 *   setTimeout: (fn: () => void, ms: number) => any, clearTimeout: (t: any) => void,
 *   setInterval: (fn: () => void, ms: number) => any, clearInterval: (t: any) => void,
 * }} Timers
 */

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_SUSPENDED = 4403;
/** Never sent by the server: the code this client closes with when the browser goes offline. */
export const CLOSE_NETWORK_DOWN = 4002;
const OPEN = 1;

/** Errors after which a command may or may not have been carried out: send it again. */
export const RESEND_AFTER = new Set(["offline", "disconnected", "timeout"]);

/** A command's error reply, or a local failure (offline, disconnected, timeout). */
export class CommandError extends Error {
  /** @param {ErrorInfo} info */
  constructor(info) {
    super(info.message);
    this.name = "CommandError";
    /** @type {string} */ this.code = info.code;
    /** @type {string|undefined} */ this.field = info.field;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0 first): 1001 comes back soon, anything
 * else backs off exponentially up to 30 s; either way spread by a random half.
 * @param {number} attempt @param {number|undefined} code @param {() => number} random
 */
export function backoffDelay(attempt, code, random) {
  const base = code === CLOSE_GOING_AWAY && attempt === 0 ? 250 : Math.min(30000, 1000 * 2 ** attempt);
  return Math.round(base * (0.5 + random() / 2));
}

/** A client id for a message: unique, at most 64 characters. */
export function newCid() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A tiny event emitter. @template {string} K */
class Emitter {
  constructor() { /** @type {Map<string, Set<Function>>} */ this.handlers = new Map(); }
  /** @param {K} name @param {Function} fn @returns {() => void} */
  on(name, fn) {
    let set = this.handlers.get(name);
    if (!set) this.handlers.set(name, (set = new Set()));
    set.add(fn);
    return () => { set && set.delete(fn); };
  }
  /** @param {K} name @param {...any} args */
  emit(name, ...args) {
    for (const fn of [...(this.handlers.get(name) || [])]) {
      try { fn(...args); } catch (e) { console.error(e); }
    }
  }
}

/**
 * One session's messages as this client knows them, and what it has not had acknowledged.
 * Events: "message" (m), "outbox" (), "reload" (), "joined" (reply), "error" (ErrorInfo).
 * @extends {Emitter<"message"|"outbox"|"reload"|"joined"|"error">}
 */
export class Channel extends Emitter {
  /** @param {Connection} conn @param {string} sessionId */
  constructor(conn, sessionId) {
    super();
    this.conn = conn;
    this.id = sessionId;
    /** @type {Map<number, Message>} */ this.messages = new Map();
    /** every seq up to this one is in `messages`: resume after it */
    this.lastSeq = 0;
    /** @type {Map<string, OutboxEntry>} in order */ this.outbox = new Map();
    /** the room is open here: join again after a reconnect */
    this.wanted = false;
    /** joined on the current socket */
    this.joined = false;
    this.flushing = false;
    /** the session ended or was cancelled: nothing more is sent */
    this.closed = false;
  }

  /** Messages in seq order. */
  list() { return [...this.messages.values()].sort((a, b) => a.seq - b.seq); }

  /**
   * Keep a message once, by seq; our own acknowledges its outbox entry.
   * @param {Message} m @returns {boolean} whether it was new
   */
  add(m) {
    if (!m || !Number.isInteger(m.seq) || this.messages.has(m.seq)) return false;
    this.messages.set(m.seq, m);
    while (this.messages.has(this.lastSeq + 1)) this.lastSeq++;
    const mine = m.from && this.conn.user && m.from.id === this.conn.user.id;
    if (m.cid && mine && this.outbox.delete(m.cid)) this.emit("outbox");
    this.emit("message", m);
    return true;
  }

  /**
   * session.join after the last seq seen; keeps joining after reconnects until leave().
   * @param {Frame} [reply] the ok of a session.join already sent (a scheduled session's Start)
   * @returns {Promise<Frame>}
   */
  async join(reply) {
    this.wanted = true;
    const r = reply || (await this.conn.call("session.join", { session_id: this.id, after_seq: this.lastSeq }));
    if (r.reload) {
      // Our transcript is from another history (the server's was restored): start over.
      this.messages.clear();
      this.lastSeq = 0;
      this.emit("reload");
      return this.join();
    }
    if (!this.wanted) {  // left while joining
      this.conn.call("session.leave", { session_id: this.id }).catch(() => {});
      return r;
    }
    this.joined = true;
    for (const m of r.messages || []) this.add(m);
    this.emit("joined", r);
    this.flush();
    return r;
  }

  /** Leave the room (the outbox is still sent). */
  leave() {
    const was = this.joined;
    this.wanted = false;
    this.joined = false;
    if (was && this.conn.ready) this.conn.call("session.leave", { session_id: this.id }).catch(() => {});
  }

  /**
   * Queue a message (text, code or attachment) and send it when possible.
   * @param {Record<string, any>} fields kind and its content
   * @param {any} [attachment] the attachment object, for showing it while sending
   * @returns {OutboxEntry}
   */
  send(fields, attachment) {
    /** @type {OutboxEntry} */
    const entry = { cid: newCid(), fields, attachment: attachment || null, error: null };
    this.outbox.set(entry.cid, entry);
    this.emit("outbox");
    this.flush();
    return entry;
  }

  /** Send the outbox in order, one at a time; what fails by disconnect waits for the next socket. */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const entry of this.outbox.values()) {  // also visits entries queued meanwhile
        if (entry.error || !this.outbox.has(entry.cid)) continue;
        if (!this.conn.ready) break;
        /** @type {Frame} */
        let r;
        try {
          r = await this.conn.call("message.send", { session_id: this.id, cid: entry.cid, ...entry.fields });
        } catch (err) {
          const e = /** @type {CommandError} */ (err);
          if (RESEND_AFTER.has(e.code)) break;
          entry.error = { code: e.code, message: e.message, field: e.field };
          this.emit("error", entry.error);
          this.emit("outbox");
          continue;
        }
        if (!this.outbox.delete(entry.cid)) continue;  // its echo came first
        this.emit("outbox");
        this.add({
          session_id: this.id, seq: r.seq, cid: entry.cid, from: this.conn.me(), at: r.at,
          kind: entry.fields.kind, text: entry.fields.text || null, code: entry.fields.code || null,
          attachment: entry.attachment,
        });
      }
    } finally {
      this.flushing = false;
    }
  }

  /** @param {string} cid */
  retry(cid) {
    const e = this.outbox.get(cid);
    if (!e) return;
    e.error = null;
    this.emit("outbox");
    this.flush();
  }

  /** @param {string} cid */
  discard(cid) {
    if (this.outbox.delete(cid)) this.emit("outbox");
  }

  /** The session ended or was cancelled: what is still queued cannot go. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.wanted = false;
    this.joined = false;
    for (const e of this.outbox.values()) if (!e.error) e.error = { code: "invalid_state", message: "the session ended" };
    this.emit("outbox");
  }

  /** After a new hello: join again where the room is open, send the outbox everywhere. */
  resume() {
    this.joined = false;
    if (this.closed) return;
    if (this.wanted) {
      this.join().catch((err) => {
        if (!RESEND_AFTER.has(err.code)) this.emit("error", { code: err.code, message: err.message });
      });
    } else this.flush();
  }
}

/**
 * The connection. Events: "status" (StatusInfo), "hello" (ok reply), "event" (frame),
 * "unauthorized" (), "suspended" (), "error" (an error frame without re).
 * @extends {Emitter<"status"|"hello"|"event"|"unauthorized"|"suspended"|"error">}
 */
export class Connection extends Emitter {
  /**
   * @param {{url: string, token: string, WebSocketImpl?: any, timers?: Timers, random?: () => number,
   *   now?: () => number, replyTimeout?: number, protocol?: string}} opts
   */
  constructor(opts) {
    super();
    this.url = opts.url;
    this.token = opts.token;
    this.WebSocketImpl = opts.WebSocketImpl || globalThis.WebSocket;
    /** @type {Timers} */
    this.timers = opts.timers || {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms), clearTimeout: (t) => globalThis.clearTimeout(t),
      setInterval: (fn, ms) => globalThis.setInterval(fn, ms), clearInterval: (t) => globalThis.clearInterval(t),
    };
    this.random = opts.random || Math.random;
    this.now = opts.now || Date.now;
    this.replyTimeout = opts.replyTimeout || 30000;
    this.protocol = opts.protocol || "rt.v1.json";
    /** @type {any} */ this.ws = null;
    this.ready = false;
    this.wanted = false;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (f: Frame) => void, reject: (e: CommandError) => void, timer: any}>} */
    this.pending = new Map();
    this.attempt = 0;
    /** @type {any} */ this.retryTimer = null;
    /** @type {any} */ this.pingTimer = null;
    this.awaitingPong = false;
    this.skew = 0;
    /** @type {Person|null} */ this.user = null;
    /** @type {Map<string, Channel>} */ this.channels = new Map();
    /** @type {StatusInfo} */ this.status = { state: "idle" };
    /** the browser said it is offline: no reconnect until reconnectNow() (its "online") */
    this.networkDown = false;
  }

  /** The server's clock, as far as the hello told. */
  serverNow() { return this.now() + this.skew; }

  /** @returns {Person} */
  me() { return this.user ? { id: this.user.id, name: this.user.name, role: this.user.role } : { id: "" }; }

  /** @param {StatusInfo} s */
  setStatus(s) { this.status = s; this.emit("status", s); }

  start() {
    this.wanted = true;
    this.attempt = 0;
    this.open();
  }

  /** Close for good (sign out). */
  stop() {
    this.wanted = false;
    this.timers.clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    this.failPending("disconnected", "the connection was closed");
    if (ws) { try { ws.close(1000, "signed out"); } catch (e) { /* already closed */ } }
    this.setStatus({ state: "stopped" });
  }

  /** Reconnect now (the browser says it is online again). */
  reconnectNow() {
    this.networkDown = false;
    if (!this.wanted || this.ws) return;
    this.attempt = 0;
    this.open();
  }

  /**
   * The browser says the network is gone: drop the socket now, as a lost one (pending
   * calls fail as disconnected, outboxes wait), and wait for reconnectNow().
   */
  networkLost() {
    this.networkDown = true;
    if (!this.wanted) return;
    const ws = this.ws;
    if (ws) {
      this.onClose(CLOSE_NETWORK_DOWN);
      try { ws.close(1000, "network down"); } catch (e) { /* gone */ }
    } else {
      this.scheduleReconnect(CLOSE_NETWORK_DOWN);
    }
  }

  open() {
    this.timers.clearTimeout(this.retryTimer);
    if (!this.wanted) return;
    this.setStatus({ state: "connecting", attempt: this.attempt });
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url, this.protocol);
    } catch (e) {
      this.scheduleReconnect(undefined);
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.sendFrame({ type: "hello", token: this.token }).then(
        (reply) => { if (ws === this.ws) this.onHello(reply); },
        () => { /* the server closes with 4401 */ },
      );
    };
    ws.onmessage = (/** @type {{data: any}} */ ev) => {
      if (ws !== this.ws) return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      if (frame && typeof frame === "object" && !Array.isArray(frame)) this.onFrame(frame);
    };
    ws.onclose = (/** @type {{code: number}} */ ev) => {
      if (ws !== this.ws) return;
      this.onClose(ev.code);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  /** @param {number} code */
  onClose(code) {
    this.ws = null;
    this.ready = false;
    this.stopHeartbeat();
    this.failPending("disconnected", "the connection was lost");
    for (const ch of this.channels.values()) ch.joined = false;
    if (code === CLOSE_UNAUTHENTICATED) {
      this.wanted = false;
      this.setStatus({ state: "stopped", code, reason: "unauthorized" });
      this.emit("unauthorized");
      return;
    }
    if (code === CLOSE_SUSPENDED) {
      this.wanted = false;
      this.setStatus({ state: "stopped", code, reason: "suspended" });
      this.emit("suspended");
      return;
    }
    if (this.wanted) this.scheduleReconnect(code);
  }

  /** @param {number|undefined} code */
  scheduleReconnect(code) {
    this.timers.clearTimeout(this.retryTimer);
    if (this.networkDown) {
      this.setStatus({ state: "offline", code: CLOSE_NETWORK_DOWN, attempt: this.attempt, reason: "network" });
      return;
    }
    const delay = backoffDelay(this.attempt, code, this.random);
    this.attempt++;
    this.setStatus({ state: "offline", code, attempt: this.attempt, retryAt: this.now() + delay });
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = this.timers.setTimeout(() => this.open(), delay);
  }

  /** @param {string} code @param {string} message */
  failPending(code, message) {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) { this.timers.clearTimeout(p.timer); p.reject(new CommandError({ code, message })); }
  }

  /**
   * Send a frame with a fresh id; resolves with the ok reply, rejects with a CommandError.
   * @param {Frame} frame @param {number} [timeout] @returns {Promise<Frame>}
   */
  sendFrame(frame, timeout) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== OPEN) {
        reject(new CommandError({ code: "offline", message: "not connected to the server" }));
        return;
      }
      const id = this.nextId++;
      const timer = this.timers.setTimeout(() => {
        if (!this.pending.delete(id)) return;
        reject(new CommandError({ code: "timeout", message: "no answer from the server" }));
      }, timeout || this.replyTimeout);
      this.pending.set(id, { resolve, reject, timer });
      try {
        ws.send(JSON.stringify({ ...frame, id }));
      } catch (e) {
        this.pending.delete(id);
        this.timers.clearTimeout(timer);
        reject(new CommandError({ code: "offline", message: "not connected to the server" }));
      }
    });
  }

  /**
   * A command; its ok reply, or a CommandError (also "offline" before the hello).
   * @param {string} type @param {Record<string, any>} [fields] @param {{timeout?: number}} [opts]
   * @returns {Promise<Frame>}
   */
  call(type, fields = {}, opts = {}) {
    if (!this.ready) return Promise.reject(new CommandError({ code: "offline", message: "not connected to the server" }));
    return this.sendFrame({ ...fields, type }, opts.timeout);
  }

  /** @param {Frame} reply */
  onHello(reply) {
    this.ready = true;
    this.attempt = 0;
    const server = Date.parse(reply.server_time);
    this.skew = Number.isFinite(server) ? server - this.now() : 0;
    if (reply.user) this.user = reply.user;
    this.startHeartbeat(Math.max(5, Number(reply.heartbeat) || 25) * 1000);
    this.setStatus({ state: "online" });
    this.emit("hello", reply);
    for (const ch of this.channels.values()) ch.resume();
  }

  /** @param {number} every ms */
  startHeartbeat(every) {
    this.stopHeartbeat();
    this.awaitingPong = false;
    this.pingTimer = this.timers.setInterval(() => {
      if (!this.ws) return;
      if (this.awaitingPong) {
        // No answer for a whole beat: the socket is dead though it looks open.
        const ws = this.ws;
        this.onClose(4000);
        try { ws.close(4000, "heartbeat timeout"); } catch (e) { /* gone */ }
        return;
      }
      this.awaitingPong = true;
      this.call("ping", {}, { timeout: every }).then(() => { this.awaitingPong = false; }, () => {});
    }, every);
  }

  stopHeartbeat() {
    this.timers.clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.awaitingPong = false;
  }

  /** @param {Frame} f */
  onFrame(f) {
    if (f.type === "ok" || f.type === "error") {
      const p = this.pending.get(f.re);
      if (p) {
        this.pending.delete(f.re);
        this.timers.clearTimeout(p.timer);
        if (f.type === "ok") p.resolve(f);
        else p.reject(new CommandError({ code: f.code, message: f.message, field: f.field }));
      } else if (f.type === "error") {
        this.emit("error", f);
      }
      return;
    }
    if (f.type === "message" && typeof f.session_id === "string") {
      const ch = this.channels.get(f.session_id);
      if (ch) ch.add(/** @type {Message} */ (/** @type {unknown} */ (f)));
    }
    if ((f.type === "session.update" && f.session && (f.session.status === "ended" || f.session.status === "cancelled"))) {
      const ch = this.channels.get(f.session.id);
      if (ch) ch.close();
    }
    if (f.type === "session.cancelled") {
      const ch = this.channels.get(f.session_id);
      if (ch) ch.close();
    }
    this.emit("event", f);
  }

  /** The channel of a session (made on first use, kept while the page lives). @param {string} sessionId */
  channel(sessionId) {
    let ch = this.channels.get(sessionId);
    if (!ch) this.channels.set(sessionId, (ch = new Channel(this, sessionId)));
    return ch;
  }
}
