// @ts-check
// Formatting of times, money and durations. No DOM here.

const pad2 = (/** @type {number} */ n) => String(n).padStart(2, "0");

/** @param {string|null|undefined} iso */
export const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";
/** A date and time for a table cell: "Nov 30, 7:23 PM" (with the year when not this one). @param {string|null|undefined} iso */
export function fmtShort(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const opts = /** @type {Intl.DateTimeFormatOptions} */ ({ month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
  if (d.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
  return d.toLocaleString(undefined, opts);
}
/** @param {string|null|undefined} iso */
export const fmtDate = (iso) => iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }) : "";
/** @param {string|null|undefined} iso */
export const fmtClock = (iso) => iso ? new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }) : "";

/** Cents as US dollars: 1234 → "$12.34", -50 → "−$0.50". @param {number|null|undefined} cents */
export function dollars(cents) {
  const c = Number(cents || 0);
  const abs = Math.abs(c);
  const text = "$" + (Math.floor(abs / 100)).toLocaleString("en-US") + "." + pad2(abs % 100);
  return c < 0 ? "−" + text : text;
}

/** A signed amount: +$1.00 / −$1.00 / $0.00. @param {number} cents */
export const signedDollars = (cents) => (cents > 0 ? "+" : "") + dollars(cents);

/** Seconds as m:ss (or h:mm:ss). @param {number} sec */
export function fmtMinSec(sec) {
  const s = Math.max(0, Math.floor(sec || 0));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
}

/** Milliseconds left as a countdown. @param {number} ms */
export function fmtLeft(ms) {
  if (ms <= 0) return "0:00";
  return fmtMinSec(Math.floor(ms / 1000));
}

/** "in 30 seconds", "10 minutes": how long before a start. @param {number} seconds */
export function fmtBefore(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.round(s / 60);
  return `${m} minute${m === 1 ? "" : "s"}`;
}

/** A rough duration: "45 s", "12 min", "3 h". @param {number|null|undefined} seconds */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** @param {number} n */
export function fmtSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "2025-03" → "March 2025". @param {string} month */
export function fmtMonth(month) {
  const [y, m] = month.split("-").map(Number);
  if (!y || !m) return month;
  return new Date(Date.UTC(y, m - 1, 1)).toLocaleDateString(undefined, { month: "long", year: "numeric", timeZone: "UTC" });
}

/** A Date as ISO-8601 in the browser's own offset: 2025-03-01T14:30:00+01:00. @param {Date} d */
export function toOffsetIso(d) {
  const off = -d.getTimezoneOffset(), abs = Math.abs(off);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}` +
    `T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}` +
    `${off >= 0 ? "+" : "-"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

/** The value a datetime-local input shows for a Date (local time, to the minute). @param {Date} d */
export const toLocalInput = (d) =>
  `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;

/** Server messages name times in UTC: add the local time after each. @param {string} text */
export const localizeTimes = (text) => String(text).replace(/\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?Z/g,
  (iso) => `${iso} (${new Date(iso).toLocaleTimeString()} your time)`);

/** "a, b,, c" → ["a", "b", "c"] without repeats. @param {string} s */
export const splitList = (s) => [...new Set(s.split(",").map((x) => x.trim()).filter(Boolean))];

/** The previous UTC month, YYYY-MM (the one a payout run is usually for). @param {Date} [now] */
export function lastMonth(now = new Date()) {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}`;
}

/** Stars as text: ★★★★☆. @param {number} n */
export const stars = (n) => "★".repeat(Math.max(0, Math.min(5, n))) + "☆".repeat(Math.max(0, 5 - Math.max(0, Math.min(5, n))));

/** Words for a ledger row kind. */
export const KIND_TEXT = /** @type {Record<string, string>} */ ({
  charge: "Session charge",
  earning: "Session earnings",
  platform_fee: "Platform fee",
  refund: "Refund",
  refund_reversal: "Refund (taken back from earnings)",
  fee_reversal: "Platform fee returned",
  no_fault_refund: "No-fault refund",
  cancellation_fee: "Cancellation fee",
  cancellation_compensation: "Cancellation compensation",
  payout: "Payout to bank",
  payout_transfer: "Payout transfer",
});

/** Words for a claim status. */
export const CLAIM_TEXT = /** @type {Record<string, string>} */ ({
  open: "Refund claimed",
  disputed: "Under dispute",
  refunded: "Refunded",
  denied: "Claim denied",
  no_fault: "Refunded (no fault)",
});
