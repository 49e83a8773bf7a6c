// @ts-check
// node --test rtserver/static/tests: how the state merges what the server says.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Store, initialState, applyState, mergeRequest, applyRequestUpdate, addRequestMessage,
  markOfferGone, applySessionUpdate, markJoined, noteCancelled, sessionsWith,
} from "../store.js";

test("subscribers hear which keys changed; unsubscribe stops them", () => {
  const store = new Store();
  /** @type {string[][]} */
  const heard = [];
  const off = store.subscribe((_s, changed) => heard.push([...changed]));
  store.set({ presence: "available" });
  store.update(["offers"], (s) => { s.offers.set("r1", { offer: {}, gone: null }); });
  off();
  store.set({ presence: "away" });
  assert.deepEqual(heard, [["presence"], ["offers"]]);
  assert.equal(store.state.presence, "away");
  store.reset();
  assert.equal(store.state.offers.size, 0);
});

test("state replaces offers and sessions and merges requests; a vanished open request is returned", () => {
  const s = initialState();
  s.offers.set("old", { offer: { request_id: "old" }, gone: null });
  mergeRequest(s, { id: "r1", status: "open", notified: 3 });
  mergeRequest(s, { id: "r2", status: "open" });
  const missing = applyState(s, {
    presence: "available",
    offers: [{ request_id: "r9" }],
    requests: [{ id: "r1", status: "open", notified: 1, title: "T" }],
    sessions: [{ id: "s1", status: "active" }],
  });
  assert.deepEqual([...s.offers.keys()], ["r9"]);
  assert.deepEqual([...s.sessions.keys()], ["s1"]);
  assert.equal(s.presence, "available");
  assert.deepEqual(missing, ["r2"]);
  assert.equal(s.requests.get("r1")?.req.notified, 3, "notified only grows");
  assert.equal(s.requests.get("r1")?.req.title, "T");
});

test("a closed request never reopens; request.update makes a placeholder for an unknown one", () => {
  const s = initialState();
  mergeRequest(s, { id: "r1", status: "accepted" });
  mergeRequest(s, { id: "r1", status: "open" });
  assert.equal(s.requests.get("r1")?.req.status, "accepted");
  const unknown = applyRequestUpdate(s, { request_id: "r2", status: "accepted", notified: 2, session_id: "s9", expert: { id: "e1", name: "E" } });
  assert.equal(unknown, true);
  const e = s.requests.get("r2");
  assert.equal(e?.placeholder, true);
  assert.equal(e?.req.session_id, "s9");
  assert.equal(e?.expert?.name, "E");
  mergeRequest(s, { id: "r2", status: "accepted", title: "Full" }, false);
  assert.equal(s.requests.get("r2")?.placeholder, false);
  assert.equal(s.requests.get("r2")?.req.notified, 2);
});

test("request messages are kept once", () => {
  const s = initialState();
  const m = { request_id: "r1", from: { id: "u" }, text: "hi", at: "2026-01-01T00:00:00.000Z" };
  assert.equal(addRequestMessage(s, m), true);
  assert.equal(addRequestMessage(s, { ...m }), false);
  assert.equal(s.threads.get("r1")?.msgs.length, 1);
});

test("an offer is marked gone once, with words for the reason", () => {
  const s = initialState();
  s.offers.set("r1", { offer: {}, gone: null });
  assert.equal(markOfferGone(s, "r1", "taken")?.gone, "Taken by another expert");
  assert.equal(markOfferGone(s, "r1", "expired"), null);
  assert.equal(markOfferGone(s, "nope", "expired"), null);
});

test("sessions: ended and cancelled leave; joins are recorded on scheduled ones; sorted views", () => {
  const s = initialState();
  applySessionUpdate(s, { id: "a", status: "scheduled", scheduled_at: "2026-01-02T10:00:00Z" });
  applySessionUpdate(s, { id: "b", status: "scheduled", scheduled_at: "2026-01-01T10:00:00Z" });
  applySessionUpdate(s, { id: "c", status: "active", started_at: "2026-01-01T09:00:00Z" });
  assert.deepEqual(sessionsWith(s, "scheduled").map((x) => x.id), ["b", "a"]);
  assert.equal(markJoined(s, "a", "u1"), true);
  assert.equal(markJoined(s, "a", "u1"), false);
  assert.equal(markJoined(s, "c", "u1"), false, "only scheduled sessions count joins");
  assert.deepEqual(s.sessions.get("a").joined, ["u1"]);
  const before = applySessionUpdate(s, { id: "c", status: "ended" });
  assert.equal(before.status, "active");
  assert.equal(s.sessions.has("c"), false);
});

test("a cancellation is noted once, keeping who cancelled", () => {
  const s = initialState();
  s.sessions.set("a", { id: "a", title: "T", status: "scheduled" });
  const first = noteCancelled(s, "a", { reason: "cancelled", fee_cents: 500, charged_user_id: "u1" }, null, true);
  assert.equal(first?.session.title, "T");
  assert.equal(noteCancelled(s, "a", { reason: "cancelled" }, null, false), null);
  assert.equal(s.cancelled.get("a")?.byMe, true);
});
