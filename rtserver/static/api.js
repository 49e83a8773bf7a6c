// @ts-check
// HTTP: the bearer token on every call, JSON in and out, errors thrown as ApiError with the
// server's code, status and field. No DOM here.

/** An HTTP error: the server's {error: {code, message, field}}, or a network failure (status 0). */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message @param {string} [field] */
  constructor(status, code, message, field) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** @type {{token: string|null, onUnauthorized: (() => void)|null, onSuspended: (() => void)|null, fetch: typeof fetch}} */
const config = {
  token: null,
  onUnauthorized: null,
  onSuspended: null,
  fetch: (...args) => globalThis.fetch(...args),
};

/** @param {string|null} token */
export function setToken(token) { config.token = token; }
export function getToken() { return config.token; }

/** @param {{onUnauthorized?: () => void, onSuspended?: () => void, fetch?: typeof fetch}} handlers */
export function configure(handlers) { Object.assign(config, handlers); }

/** A fresh Idempotency-Key. */
export function newIdempotencyKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One Idempotency-Key per user intent: the same body gets the same key again (a retry after a
 * lost answer moves money once), another body gets a new one (the server would refuse an old
 * key with another body).
 */
export class IdempotentAction {
  constructor() { this.body = ""; this.key = ""; }
  /** @param {any} body @returns {string} */
  keyFor(body) {
    const text = JSON.stringify(body ?? null);
    if (text !== this.body || !this.key) { this.body = text; this.key = newIdempotencyKey(); }
    return this.key;
  }
}

/**
 * @param {string} path @param {Record<string, any>} [query] values null, undefined or "" are left out
 * @returns {string}
 */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === "") continue;
    q.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = q.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

/**
 * The Response of a successful call; otherwise throws ApiError. A FormData body goes as
 * multipart (the browser sets its boundary), anything else as JSON.
 * @param {string} method @param {string} path
 * @param {{body?: any, query?: Record<string, any>, idempotencyKey?: string, accept?: string}} [opts]
 * @returns {Promise<Response>}
 */
export async function request(method, path, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: opts.accept || "application/json" };
  const json = opts.body !== undefined && !(typeof FormData !== "undefined" && opts.body instanceof FormData);
  if (json) headers["Content-Type"] = "application/json";
  if (config.token) headers.Authorization = "Bearer " + config.token;
  if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
  const url = withQuery(path, opts.query);
  let res;
  try {
    res = await config.fetch(url, { method, headers, body: json ? JSON.stringify(opts.body) : opts.body });
  } catch (e) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (res.ok) return res;
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  const err = (data && data.error) || { code: "http_" + res.status, message: res.statusText || "error" };
  const authCall = path.startsWith("/api/auth/");
  if (res.status === 401 && config.token && !authCall && config.onUnauthorized) config.onUnauthorized();
  if (res.status === 403 && config.token && !authCall && /suspended/i.test(err.message || "") && config.onSuspended) {
    config.onSuspended();
  }
  throw new ApiError(res.status, err.code || "error", err.message || "error", err.field);
}

/**
 * A JSON call: the decoded body (null when the body is empty).
 * @param {string} method @param {string} path @param {any} [body]
 * @param {{query?: Record<string, any>, idempotencyKey?: string}} [opts]
 * @returns {Promise<any>}
 */
export async function api(method, path, body, opts = {}) {
  const res = await request(method, path, { ...opts, body });
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** @param {string} path @param {Record<string, any>} [query] */
export const get = (path, query) => api("GET", path, undefined, { query });

/** @param {string} path @param {any} body @param {string} [idempotencyKey] */
export const post = (path, body, idempotencyKey) => api("POST", path, body ?? {}, { idempotencyKey });

/** @param {string} path @param {any} body */
export const put = (path, body) => api("PUT", path, body);

/**
 * A file behind the bearer token, as a Blob (downloads never put the token in a URL).
 * @param {string} path @param {Record<string, any>} [query] @returns {Promise<Blob>}
 */
export async function fetchBlob(path, query) {
  const res = await request("GET", path, { query, accept: "*/*" });
  return res.blob();
}

/** @param {string} id */
export const enc = (id) => encodeURIComponent(id);
