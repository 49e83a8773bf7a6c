"""The Python SDK (clients/python) against real nodes: commands, typed events, resume
across a SIGKILL and a SIGTERM (subprocess nodes with real Redis), both subprotocols,
the HTTP API with its errors, and the bounded event queue."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rtclient import MSGPACK, AsyncApi, AsyncClient, AuthFailed, Backoff, ConnectionState
from rtclient.commands import MessageSend
from rtclient.errors import (
    AccountSuspended,
    InvalidField,
    InvalidState,
    NotFound,
    OfferTaken,
    Unauthenticated,
)
from rtclient.models import (
    EVENT_TYPES,
    Attachment,
    BillingEvent,
    Message,
    Offer,
    OfferNew,
    Request,
    RequestUpdate,
    Session,
    SessionUpdate,
    State,
)
from rtclient.outbox import new_cid

from clients.rtclient import Api
from tests.portal import new_manager
from tests.servers import (
    Node,
    RedisServer,
    new_customer,
    new_expert,
    run_node,
    start_cluster,
    unique,
)

# Reconnect fast: the tests wait for restarts, not for backoff.
FAST = Backoff(base=0.05, cap=0.5, soon=0.02)


async def pair(node: Node, api: Api, **kw: Any) -> tuple[AsyncClient, AsyncClient]:
    """A connected customer and an available expert (python, en)."""
    _, ctoken = await new_customer(api)
    _, etoken = await new_expert(api)
    customer = await AsyncClient(node.http, ctoken, **kw).connect()
    expert = await AsyncClient(node.http, etoken, **kw).connect()
    await expert.set_presence("available")
    return customer, expert


async def open_session(customer: AsyncClient, expert: AsyncClient) -> str:
    """A request accepted and joined by both: its session id."""
    request = await customer.create_request("Help", ["python"], "en")
    offer = await expert.next_event(OfferNew, lambda e: e.offer.request_id == request.id)
    session = await expert.accept_offer(offer.offer.request_id)
    update = await customer.next_event(RequestUpdate, lambda e: e.status == "accepted")
    assert update.session_id == session.id
    await customer.join(session.id)
    await expert.join(session.id)
    return session.id


async def until(check: Any, timeout: float = 30.0) -> None:
    """Poll ``check()`` until true (a generous bound, only against hangs)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - state held by the clients, no event to wait on
            await asyncio.sleep(0.02)


def message_events(client: AsyncClient) -> list[Message]:
    """The Message events queued now (other events are dropped)."""
    out = []
    while (event := client.get_event_nowait()) is not None:
        if isinstance(event, Message):
            out.append(event)
    return out


def text(client: AsyncClient, sid: str, i: int) -> MessageSend:
    return MessageSend(session_id=sid, cid=new_cid(), kind="text", text=f"m{i}")


async def test_chat_billing_and_end_with_a_discount(node: Node, api: Api) -> None:
    customer, expert = await pair(node, api)
    try:
        sid = await open_session(customer, expert)
        sent = await customer.send_text(sid, "hello")
        got = await expert.next_event(Message)
        assert got.seq == sent.seq == 1 and got.text == "hello"
        assert got.from_ is not None and got.from_.role == "customer"
        await expert.send_code(sid, "print(1)", "python")
        code = await customer.next_event(Message)
        assert code.kind == "code" and code.code is not None and code.code.source == "print(1)"
        assert (await expert.start_billing(sid)).running is True
        assert (await customer.next_event(BillingEvent)).running is True
        summary = await expert.end_session(sid, discount_pct=50)
        assert summary is not None and summary.discount_pct == 50
        ended = await customer.next_event(SessionUpdate, lambda e: e.session.id == sid)
        assert ended.session.status == "ended"
        with pytest.raises(InvalidState):
            await customer.send_text(sid, "too late")
        # Both transcripts hold each message once.
        assert [m.seq for m in customer.transcript(sid).messages()] == [1, 2]
        assert [m.seq for m in expert.transcript(sid).messages()] == [1, 2]
    finally:
        await customer.aclose()
        await expert.aclose()


async def test_first_accept_wins_with_typed_errors(node: Node, api: Api) -> None:
    customer, expert = await pair(node, api)
    _, etoken = await new_expert(api)
    rival = await AsyncClient(node.http, etoken).connect()
    try:
        await rival.set_presence("available")
        request = await customer.create_request("Race", ["python"])
        for e in (expert, rival):
            await e.next_event(OfferNew, lambda ev: ev.offer.request_id == request.id)
        results = await asyncio.gather(
            expert.accept_offer(request.id), rival.accept_offer(request.id), return_exceptions=True
        )
        assert sum(isinstance(r, Session) for r in results) == 1
        assert sum(isinstance(r, OfferTaken) for r in results) == 1
    finally:
        for c in (customer, expert, rival):
            await c.aclose()


async def test_refused_token_stops_for_good(node: Node) -> None:
    client = AsyncClient(node.http, "not-a-token", backoff=FAST)
    with pytest.raises(AuthFailed):
        await client.connect()
    assert client.state is ConnectionState.CLOSED
    assert client.statistics().connects == 0
    await client.aclose()


async def test_msgpack_subprotocol(node: Node, api: Api) -> None:
    customer, expert = await pair(node, api, subprotocol=MSGPACK)
    try:
        assert customer.codec.binary
        sid = await open_session(customer, expert)
        await customer.send_text(sid, "über msgpack")
        got = await expert.next_event(Message)
        assert got.text == "über msgpack" and got.seq == 1
    finally:
        await customer.aclose()
        await expert.aclose()


async def test_a_slow_consumer_loses_old_events_not_messages(node: Node, api: Api) -> None:
    customer, expert = await pair(node, api)
    try:
        sid = await open_session(customer, expert)
        small = await AsyncClient(node.http, expert.api.token, max_events=5).connect()
        await small.join(sid)
        for i in range(20):
            await customer.send_text(sid, f"m{i}")
        await until(lambda: len(small.transcript(sid)) == 20)
        stats = small.statistics()
        assert stats.events_queued == 5 and stats.events_dropped >= 15
        assert [m.text for m in message_events(small)] == [f"m{i}" for i in range(15, 20)]
        await small.aclose()
    finally:
        await customer.aclose()
        await expert.aclose()


async def test_http_api_and_its_errors(node: Node, api: Api, tmp_path: Path) -> None:
    customer, expert = await pair(node, api)
    try:
        sid = await open_session(customer, expert)
        me = await customer.api.me()
        assert me["user"]["role"] == "customer"
        path = tmp_path / "notes.txt"
        path.write_bytes(b"some notes")
        up = await customer.api.upload_attachment(path, content_type="text/plain", session_id=sid)
        att = msgspec.convert(up["attachment"], Attachment)
        assert att.name == "notes.txt" and att.size == 10
        await customer.send_attachment(sid, att.id)
        got = await expert.next_event(Message)
        assert got.kind == "attachment" and got.attachment is not None
        assert await expert.api.download_attachment(got.attachment.id) == b"some notes"
        body = await expert.api.session_messages(sid)
        assert [m["seq"] for m in body["messages"]] == [1]
        with pytest.raises(NotFound) as nf:
            await customer.api.get_session("no-such-session")
        assert nf.value.status == 404
        with pytest.raises(InvalidField) as bad:
            await customer.api.register("not-an-email", "password-123", "X", "customer")
        assert bad.value.status == 422
        async with AsyncClient(node.http, "bad-token").api as anon:
            with pytest.raises(Unauthenticated):
                await anon.me()
        # Money-moving calls carry an Idempotency-Key: the same key replays the answer.
        await expert.end_session(sid)
        first = await customer.api.review_session(sid, 5, "great", idempotency_key="k1")
        again = await customer.api.review_session(sid, 5, "great", idempotency_key="k1")
        assert first == again
        with pytest.raises(InvalidState):
            await customer.api.review_session(sid, 4, "again")  # a second review
    finally:
        await customer.aclose()
        await expert.aclose()


def encode_names(cls: type[msgspec.Struct]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(cls)}


async def test_the_sdk_structs_hold_every_field_the_server_sends(node: Node, api: Api) -> None:
    """Drift: every field of every frame a real server sends has a place in the SDK's
    structs (unknown fields would be silently dropped)."""
    customer, expert = await pair(node, api)
    frames: list[dict[str, Any]] = []

    def recording(c: AsyncClient) -> AsyncClient:
        original = c._dispatch

        def record(frame: dict[str, Any]) -> None:
            frames.append(frame)
            original(frame)

        c._dispatch = record  # type: ignore[method-assign]
        return c

    for c in (customer, expert):
        recording(c)
    try:
        sid = await open_session(customer, expert)
        await customer.send_text(sid, "hi")
        await expert.typing(sid)
        await expert.start_billing(sid)
        await customer.next_event(BillingEvent)
        await customer.aclose()
        customer = await recording(AsyncClient(node.http, customer.api.token)).connect()
        await expert.end_session(sid)
        await expert.next_event(SessionUpdate, lambda e: e.session.status == "ended")
    finally:
        await customer.aclose()
        await expert.aclose()
    seen = set()
    nested = {"session": Session, "offer": Offer, "request": Request}
    for frame in frames:
        ftype = frame["type"]
        if ftype in ("ok", "error"):
            continue
        seen.add(ftype)
        cls = EVENT_TYPES[ftype]
        assert set(frame) - {"type"} <= encode_names(cls), ftype
        for key, sub in nested.items():
            if isinstance(frame.get(key), dict):
                assert set(frame[key]) <= encode_names(sub), (ftype, key)
    assert {"state", "offer.new", "request.update", "session.update", "message"} <= seen


# -- crashes: subprocess nodes, real Redis -------------------------------------------------


async def test_exactly_once_across_a_sigkill_and_restart(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    [node] = start_cluster(
        tmp_path, data_dir, redis_server, redis_prefix, 1, message_rate=1000, message_burst=1000
    )
    api = Api(node.http)
    customer, expert = await pair(node, api, backoff=FAST)
    try:
        sid = await open_session(customer, expert)
        for i in range(10):
            await customer.send_text(sid, f"m{i}")
        # Ten queued when the node dies (one of them on the wire), ten more while it is down.
        waiting = [customer.send_nowait(text(customer, sid, i)) for i in range(10, 20)]
        node.kill()
        await customer.wait_state(ConnectionState.RECONNECTING)
        waiting += [customer.send_nowait(text(customer, sid, i)) for i in range(20, 30)]
        answers = [expert.send_nowait(text(expert, sid, i)) for i in range(100, 105)]
        assert customer.statistics().outbox_pending > 0
        node.start()
        async with asyncio.timeout(60):
            await asyncio.gather(*waiting)
            await asyncio.gather(*answers)
        await until(lambda: expert.transcript(sid).last_seq == 35)
        await until(lambda: customer.transcript(sid).last_seq == 35)
        held = expert.transcript(sid).messages()
        # Gapless on both sides, each message once.
        assert [m.seq for m in held] == list(range(1, 36))
        assert [m.seq for m in customer.transcript(sid).messages()] == list(range(1, 36))
        mine = [f"m{i}" for i in range(30)]
        assert [m.text for m in held if m.text in mine] == mine
        # The applications saw each of the other side's messages exactly once. (Not
        # always in order: after a reconnect, a message relayed live may overtake the
        # join reply that holds the ones missed; the transcript is in order.)
        assert sorted(m.text or "" for m in message_events(expert)) == sorted(mine)
        theirs = [f"m{i}" for i in range(100, 105)]
        assert sorted(m.text or "" for m in message_events(customer)) == sorted(theirs)
        # The server stored each exactly once.
        stored = await customer.api.session_messages(sid, limit=500)
        texts = [m["text"] for m in stored["messages"]]
        assert sorted(texts) == sorted(mine + [f"m{i}" for i in range(100, 105)])
        assert customer.statistics().connects == 2
    finally:
        await customer.aclose()
        await expert.aclose()
        await api.aclose()
        node.stop()


async def test_reconnect_after_sigterm_going_away(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    [node] = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 1)
    api = Api(node.http)
    customer, expert = await pair(node, api, backoff=FAST)
    _, etoken = await new_expert(api)
    idle = await AsyncClient(node.http, etoken, backoff=FAST).connect()
    states: list[ConnectionState] = []
    customer.on_state_change(states.append)
    try:
        await idle.set_presence("available")
        sid = await open_session(customer, expert)
        await customer.send_text(sid, "before")
        assert node.stop() in (0, -signal.SIGTERM)  # every socket gets 1001
        await customer.wait_state(ConnectionState.RECONNECTING)
        assert customer.last_close_code == 1001
        node.start()
        async with asyncio.timeout(60):
            for c in (customer, expert, idle):
                await c.wait_open()
        assert ConnectionState.RECONNECTING in states and states[-1] is ConnectionState.OPEN
        await customer.send_text(sid, "after")
        await until(lambda: expert.transcript(sid).last_seq == 2)
        assert [m.text for m in expert.transcript(sid).messages()] == ["before", "after"]
        # Presence came back with the socket: a new request reaches the idle expert.
        request = await customer.create_request("Again", ["python"])
        await idle.next_event(OfferNew, lambda e: e.offer.request_id == request.id)
        assert isinstance(customer.last_state, State)
    finally:
        for c in (customer, expert, idle):
            await c.aclose()
        await api.aclose()
        node.stop()


async def test_suspension_closes_for_good(node: Node, api: Api, data_dir: Path) -> None:
    customer, expert = await pair(node, api, backoff=FAST)
    manager = AsyncApi(node.http, await new_manager(node, api, data_dir))
    try:
        assert expert.user is not None
        await manager.suspend_user(expert.user.id, "test")
        await expert.wait_state(ConnectionState.CLOSED)
        assert isinstance(expert.closed_reason, AccountSuspended)
        assert expert.last_close_code == 4403
        with pytest.raises(AccountSuspended):
            await expert.ping()
        audit = await manager.audit()
        assert audit["entries"][0]["action"] == "user.suspend"
    finally:
        await manager.aclose()
        await customer.aclose()
        await expert.aclose()


async def test_an_expired_token_is_renewed_by_logging_in_again(settings_for: Any) -> None:
    async with run_node(settings_for(token_ttl="2s")) as node:
        email = f"{unique('c')}@example.com"
        http = Api(node.http)
        try:
            _, token = await http.register(email, "password-123", "Carl", "customer")
            # With a token alone, its expiry (4401) ends the client.
            fixed = await AsyncClient(node.http, token, backoff=FAST).connect()
            await fixed.wait_state(ConnectionState.CLOSED)
            assert isinstance(fixed.closed_reason, AuthFailed)
            assert fixed.last_close_code == 4401
            await fixed.aclose()
            # Logged in with a password, it logs in again and goes on.
            client = await AsyncClient.login(node.http, email, "password-123", backoff=FAST)
            async with client:
                await until(lambda: client.statistics().connects >= 2)
                await client.wait_open(30)
                await client.ping()
                assert client.closed_reason is None
        finally:
            await http.aclose()


async def test_a_resend_after_the_end_gets_its_first_seq(node: Node, api: Api) -> None:
    """A message stored whose ok was lost, and the session ended before the resend: the
    server answers the resend with the first seq (a cid sent again returns it, ended or
    not), and the client settles it as stored; a message never stored is refused."""
    customer, expert = await pair(node, api)
    again = AsyncClient(node.http, customer.api.token)
    try:
        sid = await open_session(customer, expert)
        first = await customer.send_text(sid, "stored", cid="lost-ok")
        await expert.end_session(sid)
        # Another socket of the customer, whose outbox holds the same message, sent once.
        lost = again.send_nowait(
            MessageSend(session_id=sid, cid="lost-ok", kind="text", text="stored")
        )
        never = again.send_nowait(
            MessageSend(session_id=sid, cid="never-sent", kind="text", text="late")
        )
        for entry in again._outbox:
            entry.attempts = 1 if entry.cid == "lost-ok" else 0
        await again.connect()
        reply = await lost
        assert (reply.seq, reply.duplicate) == (first.seq, True)
        assert [m.cid for m in again.transcript(sid).messages()] == ["lost-ok"]
        with pytest.raises(InvalidState):
            await never
    finally:
        for c in (customer, expert, again):
            await c.aclose()
