// @ts-check
// The page's state and who listens to it, and the rules that merge what the server says
// into it. No DOM here (node --test runs it).

/**
 * @typedef {{id: string, name?: string, role?: string}} Person
 * @typedef {{offer: any, gone: string|null}} OfferEntry
 * @typedef {{req: any, expert: Person|null, placeholder: boolean}} RequestEntry
 * @typedef {{request_id: string, from: Person, text: string, at: string}} RequestMessage
 * @typedef {{msgs: RequestMessage[], keys: Set<string>}} Thread
 * @typedef {{session: any, reason: string, fee_cents: number, charged_user_id: string|null, byMe: boolean}} Cancelled
 * @typedef {{
 *   token: string|null, user: any, presence: string, conn: {state: string, [k: string]: any},
 *   offers: Map<string, OfferEntry>, requests: Map<string, RequestEntry>, sessions: Map<string, any>,
 *   threads: Map<string, Thread>, cancelled: Map<string, Cancelled>, notifications: any[],
 *   openRoom: string|null,
 * }} AppState
 * @typedef {(state: AppState, changed: Set<string>) => void} Listener
 */

/** @returns {AppState} */
export function initialState() {
  return {
    token: null,
    user: null,
    presence: "away",
    conn: { state: "idle" },
    offers: new Map(),
    requests: new Map(),
    sessions: new Map(),
    threads: new Map(),
    cancelled: new Map(),
    notifications: [],
    openRoom: null,
  };
}

/** State plus subscribers; every change names the keys it touched. */
export class Store {
  /** @param {AppState} [state] */
  constructor(state) {
    /** @type {AppState} */ this.state = state || initialState();
    /** @type {Set<Listener>} */ this.listeners = new Set();
  }

  /** @param {Listener} fn @returns {() => void} unsubscribe */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** @param {Partial<AppState>} patch */
  set(patch) {
    Object.assign(this.state, patch);
    this.notify(Object.keys(patch));
  }

  /**
   * Change the state in place and tell which keys changed.
   * @param {string[]} keys @param {(s: AppState) => void} fn
   */
  update(keys, fn) {
    fn(this.state);
    this.notify(keys);
  }

  /** @param {Iterable<string>} keys */
  notify(keys) {
    const changed = new Set(keys);
    for (const fn of [...this.listeners]) {
      try { fn(this.state, changed); } catch (e) { console.error(e); }
    }
  }

  /** Forget everything of the signed-in user. */
  reset() {
    const fresh = initialState();
    Object.assign(this.state, fresh);
    this.notify(Object.keys(fresh));
  }
}

// ---------- merge rules ----------------------------------------------------------

export const REVOKE_TEXT = /** @type {Record<string, string>} */ ({
  taken: "Taken by another expert",
  cancelled: "Cancelled by the customer",
  expired: "Expired",
  withdrawn: "Withdrawn",
});

/**
 * The `state` event: offers and sessions are replaced by the snapshot; requests are merged
 * (a request we knew open but missing from it closed meanwhile: returned for a refresh).
 * @param {AppState} s @param {any} f @returns {string[]} ids of requests to look up again
 */
export function applyState(s, f) {
  if (typeof f.presence === "string") s.presence = f.presence;
  s.offers = new Map((f.offers || []).map((/** @type {any} */ o) => [o.request_id, { offer: o, gone: null }]));
  const seen = new Set();
  for (const r of f.requests || []) { seen.add(r.id); mergeRequest(s, r, false); }
  const missing = [];
  for (const [id, entry] of s.requests) if (!seen.has(id) && entry.req.status === "open") missing.push(id);
  s.sessions = new Map((f.sessions || []).map((/** @type {any} */ x) => [x.id, x]));
  return missing;
}

/**
 * Merge what we learn of a request: a closed status never reopens, `notified` only grows.
 * @param {AppState} s @param {any} req @param {boolean} [placeholder]
 */
export function mergeRequest(s, req, placeholder) {
  const old = s.requests.get(req.id);
  const ph = placeholder === undefined ? (old ? old.placeholder : false) : placeholder;
  let r = old && !ph ? { ...old.req, ...req } : { ...req };
  if (old && old.req.status !== "open" && r.status === "open") r.status = old.req.status;
  if (old) r.notified = Math.max(old.req.notified || 0, r.notified || 0);
  s.requests.set(req.id, { req: r, expert: old ? old.expert : null, placeholder: ph });
}

/**
 * A request.update event. Returns whether the request was unknown (a placeholder was made).
 * @param {AppState} s @param {any} f @returns {boolean}
 */
export function applyRequestUpdate(s, f) {
  const entry = s.requests.get(f.request_id);
  let unknown = false;
  if (!entry) {
    unknown = true;
    mergeRequest(s, { id: f.request_id, title: "Request " + f.request_id, status: f.status, notified: f.notified || 0 }, true);
  } else {
    mergeRequest(s, { ...entry.req, status: f.status, notified: f.notified || 0 });
  }
  const e = /** @type {RequestEntry} */ (s.requests.get(f.request_id));
  if (f.session_id) e.req.session_id = f.session_id;
  if (f.expert) e.expert = f.expert;
  return unknown;
}

/**
 * A request.message (event or our own reply): kept once per thread.
 * @param {AppState} s @param {RequestMessage} m @returns {boolean} whether it was new
 */
export function addRequestMessage(s, m) {
  let t = s.threads.get(m.request_id);
  if (!t) s.threads.set(m.request_id, (t = { msgs: [], keys: new Set() }));
  const key = `${m.from && m.from.id}|${m.at}|${m.text}`;
  if (t.keys.has(key)) return false;
  t.keys.add(key);
  t.msgs.push(m);
  return true;
}

/**
 * An offer is gone (revoked, taken, expired): it stays shown a moment with the reason.
 * @param {AppState} s @param {string} requestId @param {string} reason @returns {OfferEntry|null}
 */
export function markOfferGone(s, requestId, reason) {
  const entry = s.offers.get(requestId);
  if (!entry || entry.gone) return null;
  entry.gone = REVOKE_TEXT[reason] || reason;
  return entry;
}

/**
 * session.update: active and scheduled sessions are kept; ended and cancelled leave.
 * @param {AppState} s @param {any} session @returns {any} the session as it was before
 */
export function applySessionUpdate(s, session) {
  const before = s.sessions.get(session.id);
  if (session.status === "ended" || session.status === "cancelled") s.sessions.delete(session.id);
  else s.sessions.set(session.id, { ...(before || {}), ...session });
  return before;
}

/**
 * A participant joined a scheduled session (room.presence, or our own join).
 * @param {AppState} s @param {string} sessionId @param {string} userId @returns {boolean}
 */
export function markJoined(s, sessionId, userId) {
  const x = s.sessions.get(sessionId);
  if (!x || x.status !== "scheduled") return false;
  const joined = x.joined || [];
  if (joined.includes(userId)) return false;
  s.sessions.set(sessionId, { ...x, joined: [...joined, userId] });
  return true;
}

/**
 * A session was cancelled: remember why and who paid (shown until dismissed).
 * @param {AppState} s @param {string} sessionId
 * @param {{reason?: string, fee_cents?: number, charged_user_id?: string|null}} c
 * @param {any} session @param {boolean} byMe @returns {Cancelled|null} the entry when it is new
 */
export function noteCancelled(s, sessionId, c, session, byMe) {
  const old = s.cancelled.get(sessionId);
  /** @type {Cancelled} */
  const entry = {
    session: session || (old && old.session) || s.sessions.get(sessionId) || { id: sessionId, title: "Session" },
    reason: c.reason || (old && old.reason) || "cancelled",
    fee_cents: c.fee_cents || 0,
    charged_user_id: c.charged_user_id || null,
    byMe: byMe || (!!old && old.byMe),
  };
  s.cancelled.set(sessionId, entry);
  return old ? null : entry;
}

/** Sessions of a status, soonest (scheduled) or oldest (active) first. @param {AppState} s @param {string} status */
export function sessionsWith(s, status) {
  const list = [...s.sessions.values()].filter((x) => x.status === status);
  const key = (/** @type {any} */ x) => status === "scheduled" ? Date.parse(x.scheduled_at) : Date.parse(x.started_at || x.created_at);
  return list.sort((a, b) => key(a) - key(b));
}
