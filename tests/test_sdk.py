"""The Python SDK (clients/python) against real nodes: commands, events, resume, crashes."""

from __future__ import annotations

from typing import Any

from rtclient import AsyncClient
from rtclient.models import Message, OfferNew, RequestUpdate
from tests.servers import Node, new_customer, new_expert
from clients.rtclient import Api


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


async def test_chat_round_trip(node: Node, api: Api) -> None:
    customer, expert = await pair(node, api)
    try:
        sid = await open_session(customer, expert)
        sent = await customer.send_text(sid, "hello")
        got = await expert.next_event(Message)
        assert got.seq == sent.seq == 1 and got.text == "hello"
        assert got.from_ is not None and got.from_.role == "customer"
    finally:
        await customer.aclose()
        await expert.aclose()
