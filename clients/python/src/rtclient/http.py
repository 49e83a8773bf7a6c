"""The whole HTTP API (docs/protocol.md, portal included), async and sync.

Every route is written once, in :class:`Routes`, as a description of the call
(:class:`Call`: method, path, query, body, headers); :class:`AsyncApi` and
:class:`Api` are the two thin transports that send it with httpx, as httpx
itself pairs ``AsyncClient`` and ``Client``. Answers are the JSON bodies as
dicts (bytes for attachments, text for CSV and metrics); errors raise the
:mod:`rtclient.errors` class of their contract code, the same as over the socket.

Money-moving and claim-making POSTs (refund claim, review, dispute, decision,
payouts run) carry an ``Idempotency-Key``, generated when not given; GETs and
those calls are sent again (same key) after a transport failure, so a lost
answer never moves money twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import httpx

from rtclient.errors import HttpTransportError, error_from_http

log = logging.getLogger("rtclient.http")

R = TypeVar("R")
Result = Literal["json", "bytes", "text"]

# Transport failures are tried this many times in all, for calls safe to repeat.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call, described: what the transports send."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    result: Result = "json"
    auth: bool = True

    @property
    def repeatable(self) -> bool:
        """Whether sending it again after a lost answer is safe (reads and keyed POSTs)."""
        return self.method == "GET" or "Idempotency-Key" in self.headers


def _query(**values: Any) -> dict[str, Any] | None:
    """Query parameters without the unset ones; lists joined by commas."""
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, list | tuple):
            v = ",".join(v)
        elif isinstance(v, bool):
            v = "1" if v else "0"
        out[k] = v
    return out or None


def _key(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Routes(Generic[R]):
    """Every route of the HTTP API; ``R`` is what a call returns (an awaitable or a value)."""

    def _send(self, call: Call) -> R:
        raise NotImplementedError

    # -- accounts ------------------------------------------------------------------------

    def register(self, email: str, password: str, name: str, role: str) -> R:
        """``POST /api/auth/register``: ``{user, token}``; the token is kept for later calls."""
        body = {"email": email, "password": password, "name": name, "role": role}
        return self._send(Call("POST", "/api/auth/register", json=body, auth=False))

    def login(self, email: str, password: str) -> R:
        """``POST /api/auth/login``: ``{user, token}``; the token is kept for later calls."""
        body = {"email": email, "password": password}
        return self._send(Call("POST", "/api/auth/login", json=body, auth=False))

    def me(self) -> R:
        """``GET /api/me``: ``{user}``."""
        return self._send(Call("GET", "/api/me"))

    def set_preferences(
        self,
        *,
        skills: list[str],
        languages: list[str],
        rate_cents_per_15min: int,
        title: str = "",
        years_experience: int = 0,
        bio: str = "",
    ) -> R:
        """``PUT /api/me/preferences`` (experts): what he offers and charges."""
        body = {
            "title": title,
            "skills": skills,
            "languages": languages,
            "years_experience": years_experience,
            "rate_cents_per_15min": rate_cents_per_15min,
            "bio": bio,
        }
        return self._send(Call("PUT", "/api/me/preferences", json=body))

    def set_phone(self, phone: str | None) -> R:
        """``PUT /api/me/phone``: E.164, or None to remove it."""
        return self._send(Call("PUT", "/api/me/phone", json={"phone": phone}))

    # -- requests, offers, notifications -------------------------------------------------

    def list_requests(self) -> R:
        """``GET /api/requests`` (customers): ``{requests}``, his open ones."""
        return self._send(Call("GET", "/api/requests"))

    def get_request(self, request_id: str) -> R:
        """``GET /api/requests/{id}``: ``{request}``."""
        return self._send(Call("GET", f"/api/requests/{request_id}"))

    def list_offers(self) -> R:
        """``GET /api/offers`` (experts): ``{offers}``, his open ones."""
        return self._send(Call("GET", "/api/offers"))

    def notifications(self, *, unread: bool | None = None) -> R:
        """``GET /api/notifications``: ``{notifications}``, newest first."""
        return self._send(Call("GET", "/api/notifications", params=_query(unread=unread)))

    def read_notification(self, notification_id: str) -> R:
        """``POST /api/notifications/{id}/read``."""
        return self._send(Call("POST", f"/api/notifications/{notification_id}/read"))

    # -- attachments ---------------------------------------------------------------------

    def upload_attachment(
        self,
        file: str | Path | bytes,
        *,
        name: str | None = None,
        content_type: str = "application/octet-stream",
        session_id: str | None = None,
        request_id: str | None = None,
        kind: str | None = None,
    ) -> R:
        """``POST /api/attachments``: ``{attachment}``. ``file`` is a path or the bytes."""
        if isinstance(file, bytes):
            content, filename = file, name or "file"
        else:
            path = Path(file)
            content, filename = path.read_bytes(), name or path.name
        form = _drop_none(session_id=session_id, request_id=request_id, kind=kind)
        files = {"file": (filename, content, content_type)}
        return self._send(Call("POST", "/api/attachments", files=files, data=form))

    def download_attachment(self, attachment_id: str) -> R:
        """``GET /api/attachments/{id}``: the bytes."""
        return self._send(Call("GET", f"/api/attachments/{attachment_id}", result="bytes"))

    # -- sessions and transcripts --------------------------------------------------------

    def list_sessions(
        self,
        *,
        status: list[str] | None = None,
        disputed: bool | None = None,
        user_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> R:
        """``GET /api/sessions``: ``{sessions, next_cursor}``, newest first."""
        q = _query(status=status, disputed=disputed, user_id=user_id, cursor=cursor, limit=limit)
        return self._send(Call("GET", "/api/sessions", params=q))

    def get_session(self, session_id: str) -> R:
        """``GET /api/sessions/{id}``: ``{session}`` with summary, attachments, ledger..."""
        return self._send(Call("GET", f"/api/sessions/{session_id}"))

    def session_messages(
        self, session_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> R:
        """``GET /api/sessions/{id}/messages``: ``{messages, last_seq, next_after_seq}``."""
        q = _query(after_seq=after_seq, limit=limit)
        return self._send(Call("GET", f"/api/sessions/{session_id}/messages", params=q))

    def claim_refund(
        self, session_id: str, reason: str, *, idempotency_key: str | None = None
    ) -> R:
        """``POST /api/sessions/{id}/refund-claim`` (its customer): ``{claim}``."""
        return self._send(
            Call(
                "POST",
                f"/api/sessions/{session_id}/refund-claim",
                json={"reason": reason},
                headers=_key(idempotency_key),
            )
        )

    def review_session(
        self,
        session_id: str,
        stars: int,
        comment: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> R:
        """``POST /api/sessions/{id}/review`` (its customer): ``{review}``."""
        return self._send(
            Call(
                "POST",
                f"/api/sessions/{session_id}/review",
                json={"stars": stars, "comment": comment},
                headers=_key(idempotency_key),
            )
        )

    # -- claims ----------------------------------------------------------------------------

    def list_claims(
        self,
        *,
        status: list[str] | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> R:
        """``GET /api/claims``: ``{claims, next_cursor}``."""
        q = _query(status=status, cursor=cursor, limit=limit)
        return self._send(Call("GET", "/api/claims", params=q))

    def get_claim(self, claim_id: str) -> R:
        """``GET /api/claims/{id}``: ``{claim}``."""
        return self._send(Call("GET", f"/api/claims/{claim_id}"))

    def dispute_claim(
        self, claim_id: str, summary: str, *, idempotency_key: str | None = None
    ) -> R:
        """``POST /api/claims/{id}/dispute`` (the expert): ``{claim}``."""
        return self._send(
            Call(
                "POST",
                f"/api/claims/{claim_id}/dispute",
                json={"summary": summary},
                headers=_key(idempotency_key),
            )
        )

    def decide_claim(
        self, claim_id: str, outcome: str, note: str = "", *, idempotency_key: str | None = None
    ) -> R:
        """``POST /api/claims/{id}/decision`` (managers): ``{claim, ledger}``."""
        return self._send(
            Call(
                "POST",
                f"/api/claims/{claim_id}/decision",
                json={"outcome": outcome, "note": note},
                headers=_key(idempotency_key),
            )
        )

    # -- money -------------------------------------------------------------------------------

    def statements(self, *, year: int | None = None) -> R:
        """``GET /api/me/statements``: ``{currency, balance_cents, months}``."""
        return self._send(Call("GET", "/api/me/statements", params=_query(year=year)))

    def transactions(self, *, cursor: str | None = None, limit: int | None = None) -> R:
        """``GET /api/me/transactions``: ``{transactions, next_cursor}``."""
        q = _query(cursor=cursor, limit=limit)
        return self._send(Call("GET", "/api/me/transactions", params=q))

    def transactions_csv(self) -> R:
        """``GET /api/me/transactions?format=csv``: every row, as CSV text."""
        q = {"format": "csv"}
        return self._send(Call("GET", "/api/me/transactions", params=q, result="text"))

    def payout_profile(self) -> R:
        """``GET /api/me/payout-profile`` (experts): ``{profile}``."""
        return self._send(Call("GET", "/api/me/payout-profile"))

    def set_payout_profile(
        self,
        *,
        billing: Mapping[str, Any] | None = None,
        address: Mapping[str, Any] | None = None,
        tax: Mapping[str, Any] | None = None,
    ) -> R:
        """``PUT /api/me/payout-profile``: each part given replaces that part."""
        body = _drop_none(billing=billing, address=address, tax=tax)
        return self._send(Call("PUT", "/api/me/payout-profile", json=body))

    def my_payouts(self) -> R:
        """``GET /api/me/payouts`` (experts): ``{payouts}``."""
        return self._send(Call("GET", "/api/me/payouts"))

    # -- experts (public) --------------------------------------------------------------------

    def experts(self, *, skill: str | None = None, language: str | None = None) -> R:
        """``GET /api/experts``: ``{experts}``, best rated first."""
        q = _query(skill=skill, language=language)
        return self._send(Call("GET", "/api/experts", params=q, auth=False))

    def expert(self, expert_id: str) -> R:
        """``GET /api/experts/{id}``: ``{expert}``."""
        return self._send(Call("GET", f"/api/experts/{expert_id}", auth=False))

    def expert_reviews(
        self, expert_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> R:
        """``GET /api/experts/{id}/reviews``: ``{reviews, next_cursor}``."""
        q = _query(cursor=cursor, limit=limit)
        return self._send(Call("GET", f"/api/experts/{expert_id}/reviews", params=q, auth=False))

    # -- managers ----------------------------------------------------------------------------

    def set_verification(self, expert_id: str, status: str, note: str = "") -> R:
        """``PUT /api/experts/{id}/verification``: ``{expert}``."""
        body = {"status": status, "note": note}
        return self._send(Call("PUT", f"/api/experts/{expert_id}/verification", json=body))

    def users(
        self,
        *,
        role: str | None = None,
        status: str | None = None,
        q: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> R:
        """``GET /api/users``: ``{users, next_cursor}``."""
        query = _query(role=role, status=status, q=q, cursor=cursor, limit=limit)
        return self._send(Call("GET", "/api/users", params=query))

    def suspend_user(self, user_id: str, reason: str) -> R:
        """``POST /api/users/{id}/suspend``: ``{user}``."""
        body = {"reason": reason}
        return self._send(Call("POST", f"/api/users/{user_id}/suspend", json=body))

    def restore_user(self, user_id: str, reason: str = "") -> R:
        """``POST /api/users/{id}/restore``: ``{user}``."""
        body = {"reason": reason}
        return self._send(Call("POST", f"/api/users/{user_id}/restore", json=body))

    def audit(self, *, cursor: str | None = None, limit: int | None = None) -> R:
        """``GET /api/audit``: ``{entries, next_cursor}``."""
        return self._send(Call("GET", "/api/audit", params=_query(cursor=cursor, limit=limit)))

    def run_payouts(self, month: str, *, idempotency_key: str | None = None) -> R:
        """``POST /api/payouts/run``: ``{period, payouts, held}``."""
        return self._send(
            Call("POST", "/api/payouts/run", json={"month": month}, headers=_key(idempotency_key))
        )

    def payouts(self, *, month: str | None = None) -> R:
        """``GET /api/payouts``: ``{payouts}``."""
        return self._send(Call("GET", "/api/payouts", params=_query(month=month)))

    def dead_letters(
        self, *, status: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> R:
        """``GET /api/dead-letters``: ``{dead_letters, next_cursor}``."""
        q = _query(status=status, cursor=cursor, limit=limit)
        return self._send(Call("GET", "/api/dead-letters", params=q))

    def retry_dead_letter(self, dead_letter_id: str) -> R:
        """``POST /api/dead-letters/{id}/retry``: ``{dead_letter}``."""
        return self._send(Call("POST", f"/api/dead-letters/{dead_letter_id}/retry"))

    # -- operations --------------------------------------------------------------------------

    def healthz(self) -> R:
        """``GET /healthz``: ``{status, node}``; a 503 raises :class:`~rtclient.errors.Internal`."""
        return self._send(Call("GET", "/healthz", auth=False))

    def metrics(self) -> R:
        """``GET /metrics``: Prometheus text."""
        return self._send(Call("GET", "/metrics", auth=False, result="text"))

    def openapi(self) -> R:
        """``GET /openapi.json``: the whole HTTP API."""
        return self._send(Call("GET", "/openapi.json", auth=False))


def _headers(call: Call, token: str | None) -> dict[str, str]:
    headers = dict(call.headers)
    if call.auth and token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _result(call: Call, response: httpx.Response) -> Any:
    """The answer's body, or the error it carries raised."""
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        raise error_from_http(response.status_code, body, response.headers.get("Retry-After"))
    if call.result == "bytes":
        return response.content
    if call.result == "text":
        return response.text
    if not response.content:
        return {}
    return response.json()


def _keep_token(api: AsyncApi | Api, call: Call, body: Any) -> None:
    # register and login hand out the token the other calls carry.
    if call.path in ("/api/auth/login", "/api/auth/register") and isinstance(body, dict):
        token = body.get("token")
        if isinstance(token, str):
            api.token = token


class AsyncApi(Routes[Awaitable[Any]]):
    """The HTTP API over an ``httpx.AsyncClient``; an async context manager."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    def _send(self, call: Call) -> Awaitable[Any]:
        return self._do(call)

    async def _do(self, call: Call) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                    headers=_headers(call, self.token),
                )
                break
            except httpx.TransportError as exc:
                if not call.repeatable or attempt == ATTEMPTS - 1:
                    raise HttpTransportError(f"{call.method} {call.path}: {exc!r}") from exc
                log.info("%s %s failed (%r); trying again", call.method, call.path, exc)
                await asyncio.sleep(0.2 * 2**attempt)
        body = _result(call, response)
        _keep_token(self, call, body)
        return body

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncApi:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Api(Routes[Any]):
    """The HTTP API over a blocking ``httpx.Client``; a context manager."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _send(self, call: Call) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                    headers=_headers(call, self.token),
                )
                break
            except httpx.TransportError as exc:
                if not call.repeatable or attempt == ATTEMPTS - 1:
                    raise HttpTransportError(f"{call.method} {call.path}: {exc!r}") from exc
                log.info("%s %s failed (%r); trying again", call.method, call.path, exc)
                time.sleep(0.2 * 2**attempt)
        body = _result(call, response)
        _keep_token(self, call, body)
        return body

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
