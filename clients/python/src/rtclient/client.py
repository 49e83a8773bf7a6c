"""The asynchronous client: :class:`AsyncClient`, typed commands over a :class:`Connection`.

The connection (:mod:`rtclient.connection`) keeps the socket open, resumes
sessions and sends the outbox; this module adds one typed method per command.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from rtclient.commands import (
    BillingPause,
    BillingStart,
    CodeBlock,
    MessageSend,
    OfferAccept,
    OfferDecline,
    Ping,
    RequestCancel,
    RequestCreate,
    RequestMessage,
    SessionCancel,
    SessionEnd,
    Typing,
)
from rtclient.connection import Connection, ConnectionState, Statistics, ws_url_for
from rtclient.errors import Disconnected, ReplyTimeout
from rtclient.models import (
    BillingReply,
    BillingState,
    EmptyReply,
    EndReply,
    Request,
    RequestMessageReply,
    RequestNote,
    RequestReply,
    SendReply,
    Session,
    SessionCancelReply,
    SessionReply,
    Summary,
)
from rtclient.outbox import new_cid

__all__ = ["AsyncClient", "ConnectionState", "Statistics", "ws_url_for"]

log = logging.getLogger("rtclient.client")


class AsyncClient(Connection):
    """An rtserver client: ``async with AsyncClient(url, token) as client: ...``.

    See :class:`Connection` for the arguments and what the connection does.
    """

    @classmethod
    async def login(
        cls, base_url: str, email: str, password: str, *, relogin: bool = True, **kw: Any
    ) -> AsyncClient:
        """A client with a fresh token (not connected yet: ``async with`` or :meth:`connect`).

        With ``relogin`` (the default) it keeps the password in memory and logs in
        again when its token expires (a 4401 after a working connection), once per
        refusal: a refused new token stops it.
        """
        client = cls(base_url, **kw)

        async def again() -> str:
            body = await client.api.login(email, password)
            return str(body["token"])

        if relogin:
            client._relogin = again
        try:
            await client.api.login(email, password)
        except BaseException:
            await client.api.aclose()
            raise
        return client

    async def ping(self) -> None:
        """A round trip to the server."""
        await self.call(Ping(), EmptyReply)

    async def create_request(
        self,
        title: str,
        skills: list[str],
        language: str = "en",
        *,
        kind: Literal["instant", "scheduled"] = "instant",
        description: str = "",
        expert_id: str | None = None,
        proposed_times: list[str] | None = None,
        attachment_ids: list[str] | None = None,
        cid: str | None = None,
    ) -> Request:
        """Ask for help (customers). Carries a ``cid``, so it is sent again after a lost
        reply and makes one request whatever happens."""
        cmd = RequestCreate(
            kind=kind,
            title=title,
            description=description,
            skills=skills,
            language=language,
            expert_id=expert_id,
            proposed_times=proposed_times or [],
            attachment_ids=attachment_ids or [],
            cid=cid or new_cid(),
        )
        while True:
            try:
                return (await self.call(cmd, RequestReply)).request
            except (Disconnected, ReplyTimeout):
                log.info("request.create lost its reply; sending cid %s again", cmd.cid)

    async def cancel_request(self, request_id: str) -> None:
        """Withdraw an open request (its customer)."""
        await self.call(RequestCancel(request_id=request_id), EmptyReply)

    async def request_message(self, request_id: str, text: str) -> RequestNote:
        """A message about an open request."""
        cmd = RequestMessage(request_id=request_id, text=text)
        return (await self.call(cmd, RequestMessageReply)).message

    async def accept_offer(self, request_id: str, time: str | None = None) -> Session:
        """Take an offered request (experts): the session, or :class:`OfferTaken` and kin."""
        return (
            await self.call(OfferAccept(request_id=request_id, time=time), SessionReply)
        ).session

    async def decline_offer(self, request_id: str) -> None:
        """Pass on an offer."""
        await self.call(OfferDecline(request_id=request_id), EmptyReply)

    async def send_text(self, session_id: str, text: str, *, cid: str | None = None) -> SendReply:
        """A text message; delivered exactly once, across reconnects."""
        cmd = MessageSend(session_id=session_id, cid=cid or new_cid(), kind="text", text=text)
        return await self.send(cmd)

    async def send_code(
        self, session_id: str, source: str, language: str = "", *, cid: str | None = None
    ) -> SendReply:
        """A code snippet."""
        cmd = MessageSend(
            session_id=session_id,
            cid=cid or new_cid(),
            kind="code",
            code=CodeBlock(language=language, source=source),
        )
        return await self.send(cmd)

    async def send_attachment(
        self, session_id: str, attachment_id: str, *, cid: str | None = None
    ) -> SendReply:
        """An uploaded attachment (``api.upload_attachment``) posted in the chat."""
        cmd = MessageSend(
            session_id=session_id,
            cid=cid or new_cid(),
            kind="attachment",
            attachment_id=attachment_id,
        )
        return await self.send(cmd)

    async def typing(self, session_id: str) -> None:
        """Tell the other side you are typing."""
        await self.call(Typing(session_id=session_id), EmptyReply)

    async def start_billing(self, session_id: str) -> BillingState:
        """Start billable time (the session's expert)."""
        return (await self.call(BillingStart(session_id=session_id), BillingReply)).billing

    async def pause_billing(self, session_id: str) -> BillingState:
        """Pause billable time (the session's expert)."""
        return (await self.call(BillingPause(session_id=session_id), BillingReply)).billing

    async def end_session(self, session_id: str, discount_pct: int | None = None) -> Summary | None:
        """End the session; the expert may discount it (0-100). Its charge summary."""
        cmd = SessionEnd(session_id=session_id, discount_pct=discount_pct)
        summary = (await self.call(cmd, EndReply)).summary
        self._session_over(session_id)
        return summary

    async def cancel_session(self, session_id: str) -> SessionCancelReply:
        """Cancel a scheduled session before it starts."""
        return await self.call(SessionCancel(session_id=session_id), SessionCancelReply)
