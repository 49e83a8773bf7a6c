// @ts-check
// node --test rtserver/static/tests: the connection's logic with a fake socket and fake timers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, backoffDelay, CommandError, CLOSE_NETWORK_DOWN } from "../conn.js";

/** Timers run by hand: advance(ms) fires what is due, in order. */
function fakeTimers() {
  let now = 0, seq = 0;
  /** @type {Map<number, {at: number, fn: () => void, every: number}>} */
  const due = new Map();
  return {
    now: () => now,
    setTimeout: (/** @type {() => void} */ fn, /** @type {number} */ ms) => { due.set(++seq, { at: now + ms, fn, every: 0 }); return seq; },
    clearTimeout: (/** @type {number} */ id) => { due.delete(id); },
    setInterval: (/** @type {() => void} */ fn, /** @type {number} */ ms) => { due.set(++seq, { at: now + ms, fn, every: ms }); return seq; },
    clearInterval: (/** @type {number} */ id) => { due.delete(id); },
    /** @param {number} ms */
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const next = [...due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!next) break;
        const [id, t] = next;
        now = t.at;
        if (t.every) t.at += t.every; else due.delete(id);
        t.fn();
      }
      now = end;
    },
  };
}

/** A WebSocket stand-in; every instance is kept in `sockets`. */
function fakeSocketClass() {
  /** @type {any[]} */
  const sockets = [];
  class FakeSocket {
    /** @param {string} url @param {string} protocol */
    constructor(url, protocol) {
      this.url = url; this.protocol = protocol; this.readyState = 0;
      /** @type {any[]} */ this.sent = [];
      /** @type {any} */ this.onopen = null;
      /** @type {any} */ this.onmessage = null;
      /** @type {any} */ this.onclose = null;
      sockets.push(this);
    }
    /** @param {string} data */
    send(data) { this.sent.push(JSON.parse(data)); }
    /** @param {number} [code] */
    close(code) { if (this.readyState === 3) return; this.readyState = 3; if (this.onclose) this.onclose({ code: code || 1000 }); }
    open() { this.readyState = 1; this.onopen(); }
    /** @param {any} frame */
    recv(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
    /** @param {number} code */
    drop(code) { this.readyState = 3; this.onclose({ code }); }
    last() { return this.sent[this.sent.length - 1]; }
    /** @param {string} type */
    find(type) { return this.sent.filter((f) => f.type === type); }
  }
  return { FakeSocket, sockets };
}

const flush = () => new Promise((r) => setImmediate(r));

function setup(extra = {}) {
  const timers = fakeTimers();
  const { FakeSocket, sockets } = fakeSocketClass();
  const conn = new Connection({ url: "ws://x/ws", token: "T", WebSocketImpl: FakeSocket, timers, now: timers.now, random: () => 0.5, ...extra });
  /** @type {any[]} */
  const events = [];
  for (const name of ["status", "hello", "event", "unauthorized", "suspended", "error"]) {
    conn.on(/** @type {any} */ (name), (/** @type {any} */ x) => events.push([name, x]));
  }
  /** Open the current socket and answer its hello. */
  async function online(user = { id: "u1", name: "Una", role: "expert" }) {
    const ws = sockets[sockets.length - 1];
    ws.open();
    const hello = ws.last();
    assert.equal(hello.type, "hello");
    assert.equal(hello.token, "T");
    ws.recv({ type: "ok", re: hello.id, user, server_time: new Date(timers.now() + 5000).toISOString(), heartbeat: 10 });
    await flush();
    return ws;
  }
  return { timers, sockets, conn, events, online };
}

test("hello, then replies matched by id; an error reply rejects with its code", async () => {
  const { conn, online, events } = setup();
  conn.start();
  const ws = await online();
  assert.equal(conn.ready, true);
  assert.equal(conn.serverNow(), 5000);
  assert.deepEqual(events.filter(([n]) => n === "status").map(([, s]) => s.state), ["connecting", "online"]);
  const a = conn.call("presence", { status: "available" });
  const b = conn.call("offer.accept", { request_id: "r1" });
  const [fa, fb] = ws.sent.slice(-2);
  assert.notEqual(fa.id, fb.id);
  ws.recv({ type: "error", re: fb.id, code: "offer_taken", message: "taken" });
  ws.recv({ type: "ok", re: fa.id, status: "available" });
  assert.equal((await a).status, "available");
  await assert.rejects(b, (err) => err instanceof CommandError && err.code === "offer_taken");
});

test("a command without an answer times out; commands while offline fail at once", async () => {
  const { conn, online, timers } = setup({ replyTimeout: 1000 });
  await assert.rejects(conn.call("ping"), (err) => /** @type {any} */ (err).code === "offline");
  conn.start();
  await online();
  const p = conn.call("ping");
  timers.advance(1001);
  await assert.rejects(p, (err) => /** @type {any} */ (err).code === "timeout");
});

test("1001 reconnects soon; other closes back off with jitter; pending calls fail as disconnected", async () => {
  const { conn, online, sockets, timers } = setup();
  conn.start();
  const ws = await online();
  const p = conn.call("ping");
  ws.drop(1001);
  await assert.rejects(p, (err) => /** @type {any} */ (err).code === "disconnected");
  assert.equal(conn.status.state, "offline");
  assert.equal(sockets.length, 1);
  timers.advance(188);  // 250 * (0.5 + 0.5 / 2), rounded
  assert.equal(sockets.length, 2);
  sockets[1].drop(1006);  // failed before the hello: attempt 1 waits 2 s * 0.75
  timers.advance(1499);
  assert.equal(sockets.length, 2);
  timers.advance(1);
  assert.equal(sockets.length, 3);
  await online();
  assert.equal(conn.attempt, 0);
});

test("backoff: exponential, capped at 30 s, spread between half and all of it", () => {
  assert.equal(backoffDelay(0, 1001, () => 0), 125);
  assert.equal(backoffDelay(0, 1006, () => 1), 1000);
  assert.equal(backoffDelay(3, 1006, () => 0), 4000);
  assert.equal(backoffDelay(10, 1006, () => 1), 30000);
  assert.equal(backoffDelay(10, 1006, () => 0), 15000);
});

test("4401 signs out and 4403 (suspended) never reconnects", async () => {
  for (const [code, name] of [[4401, "unauthorized"], [4403, "suspended"]]) {
    const { conn, online, sockets, timers, events } = setup();
    conn.start();
    const ws = await online();
    ws.drop(/** @type {number} */ (code));
    timers.advance(120000);
    assert.equal(sockets.length, 1, `no reconnect after ${code}`);
    assert.ok(events.some(([n]) => n === name));
    assert.equal(conn.status.state, "stopped");
  }
});

test("heartbeat: a ping every beat; a ping unanswered for a beat closes and reconnects", async () => {
  const { conn, online, sockets, timers } = setup();
  conn.start();
  const ws = await online();  // heartbeat 10 s
  timers.advance(10000);
  const ping = ws.last();
  assert.equal(ping.type, "ping");
  ws.recv({ type: "ok", re: ping.id });
  await flush();
  timers.advance(10000);
  assert.equal(ws.find("ping").length, 2);
  timers.advance(10000);  // the second went unanswered
  assert.equal(ws.readyState, 3);
  timers.advance(30000);
  assert.equal(sockets.length, 2);
});

test("a channel keeps messages once by seq and resumes after the last seq it has", async () => {
  const { conn, online, sockets, timers } = setup();
  conn.start();
  let ws = await online();
  const ch = conn.channel("s1");
  /** @type {number[]} */
  const seen = [];
  ch.on("message", (/** @type {any} */ m) => seen.push(m.seq));
  const joining = ch.join();
  const join = ws.last();
  assert.deepEqual([join.type, join.session_id, join.after_seq], ["session.join", "s1", 0]);
  const m = (/** @type {number} */ seq) => ({ type: "message", session_id: "s1", seq, from: { id: "u2" }, kind: "text", text: "t" + seq });
  ws.recv({ type: "ok", re: join.id, session: { id: "s1", status: "active" }, messages: [m(1), m(2)] });
  await joining;
  ws.recv(m(2));  // also came as an event
  ws.recv(m(3));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(ch.lastSeq, 3);

  ws.drop(1006);
  timers.advance(2000);
  ws = await online();
  const rejoin = ws.find("session.join").pop();
  assert.equal(rejoin.after_seq, 3);
  ws.recv({ type: "ok", re: rejoin.id, session: { id: "s1", status: "active" }, messages: [m(3), m(4)] });
  await flush();
  assert.deepEqual(seen, [1, 2, 3, 4]);
});

test("the outbox is resent with the same cid after a reconnect, and acknowledged once", async () => {
  const { conn, online, timers } = setup();
  conn.start();
  let ws = await online();
  const ch = conn.channel("s1");
  ch.wanted = true;
  ch.send({ kind: "text", text: "hello" });
  const first = ws.last();
  assert.equal(first.type, "message.send");
  assert.equal(ch.outbox.size, 1);
  ws.drop(1006);  // the answer is lost
  await flush();
  assert.equal(ch.outbox.size, 1, "kept until acknowledged");
  timers.advance(2000);
  ws = await online();
  const join = ws.find("session.join").pop();
  ws.recv({ type: "ok", re: join.id, session: { id: "s1", status: "active" }, messages: [] });
  await flush();
  const again = ws.find("message.send").pop();
  assert.equal(again.cid, first.cid);
  ws.recv({ type: "ok", re: again.id, seq: 7, at: "2026-01-01T00:00:00.000Z", duplicate: true });
  await flush();
  assert.equal(ch.outbox.size, 0);
  assert.equal(ch.messages.get(7)?.text, "hello");
});

test("the browser going offline drops the socket at once and waits for it to be online; the outbox waits too", async () => {
  const { conn, online, sockets, timers } = setup();
  conn.start();
  let ws = await online();
  const ch = conn.channel("s1");
  ch.wanted = true;
  const p = conn.call("ping");
  conn.networkLost();
  await assert.rejects(p, (err) => /** @type {any} */ (err).code === "disconnected");
  assert.equal(ws.readyState, 3, "the socket is closed, not left open until the heartbeat");
  assert.equal(conn.status.state, "offline");
  assert.equal(conn.status.reason, "network");
  assert.equal(conn.status.code, CLOSE_NETWORK_DOWN);
  ch.send({ kind: "text", text: "typed offline" });
  assert.equal(ch.outbox.size, 1);
  timers.advance(60000);
  assert.equal(sockets.length, 1, "no reconnect while the browser is offline");
  conn.reconnectNow();  // the "online" event
  assert.equal(sockets.length, 2);
  ws = await online();
  const join = ws.find("session.join").pop();
  assert.equal(join.session_id, "s1");
  ws.recv({ type: "ok", re: join.id, session: { id: "s1", status: "active" }, messages: [] });
  await flush();
  const sent = ws.find("message.send").pop();
  assert.equal(sent.text, "typed offline");
  ws.recv({ type: "ok", re: sent.id, seq: 1, at: "2026-01-01T00:00:00.000Z" });
  await flush();
  assert.equal(ch.outbox.size, 0);
});

test("offline while waiting to reconnect: the retry is called off until the browser is online", async () => {
  const { conn, online, sockets, timers } = setup();
  conn.start();
  const ws = await online();
  ws.drop(1006);
  assert.equal(conn.status.state, "offline");
  conn.networkLost();
  assert.equal(conn.status.reason, "network");
  timers.advance(60000);
  assert.equal(sockets.length, 1);
  conn.reconnectNow();
  assert.equal(sockets.length, 2);
  await online();
  assert.equal(conn.status.state, "online");
});

test("a message stored before the drop comes back in the join reply and clears its outbox entry", async () => {
  const { conn, online, timers } = setup();
  conn.start();
  let ws = await online();
  const ch = conn.channel("s1");
  ch.wanted = true;
  ch.send({ kind: "text", text: "hi" });
  const sent = ws.last();
  ws.drop(1006);
  timers.advance(2000);
  ws = await online();
  const join = ws.find("session.join").pop();
  ws.recv({ type: "ok", re: join.id, session: { id: "s1", status: "active" }, messages: [
    { session_id: "s1", seq: 1, cid: sent.cid, from: { id: "u1" }, kind: "text", text: "hi" }] });
  await flush();
  assert.equal(ch.outbox.size, 0);
  assert.equal(ws.find("message.send").length, 0, "not sent twice");
});

test("a refused message stays in the outbox with its error; an ended session fails what is queued", async () => {
  const { conn, online } = setup();
  conn.start();
  const ws = await online();
  const ch = conn.channel("s1");
  ch.send({ kind: "text", text: "x".repeat(10) });
  ws.recv({ type: "error", re: ws.last().id, code: "rate_limited", message: "slow down" });
  await flush();
  const [entry] = ch.outbox.values();
  assert.equal(entry.error?.code, "rate_limited");
  ch.retry(entry.cid);
  assert.equal(ws.last().cid, entry.cid);
  ws.recv({ type: "session.update", session: { id: "s1", status: "ended" } });
  assert.equal(ch.closed, true);
  assert.equal(entry.error?.code, "invalid_state");
});

test("reload: a join reply saying reload drops the cache and joins from the start", async () => {
  const { conn, online } = setup();
  conn.start();
  const ws = await online();
  const ch = conn.channel("s1");
  ch.add({ session_id: "s1", seq: 1, kind: "text", text: "old" });
  ch.add({ session_id: "s1", seq: 2, kind: "text", text: "old" });
  const joining = ch.join();
  const j1 = ws.last();
  assert.equal(j1.after_seq, 2);
  ws.recv({ type: "ok", re: j1.id, reload: true, session: { id: "s1", status: "active" }, messages: [] });
  await flush();
  const j2 = ws.last();
  assert.equal(j2.after_seq, 0);
  ws.recv({ type: "ok", re: j2.id, session: { id: "s1", status: "active" },
    messages: [{ session_id: "s1", seq: 1, kind: "text", text: "new" }] });
  await joining;
  assert.equal(ch.messages.size, 1);
  assert.equal(ch.messages.get(1)?.text, "new");
});
