"""Attachments over HTTP: upload (multipart) and download, with their permissions."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from rtserver.clock import to_ms
from rtserver.errors import InvalidField, NotFound, RtError, TooLarge
from rtserver.http.common import api, current_user, json_response, node_of
from rtserver.storage.attachments import Attachment, BlobWriter
from rtserver.storage.users import User

CHUNK = 256 * 1024
# Room for the multipart framing and small form fields around the file.
FORM_OVERHEAD = 64 * 1024


class LengthRequired(RtError):
    """An upload without Content-Length: its size cannot be checked before reading it."""

    code = "invalid_field"
    status = 411


async def may_read(request: Request, user: User, a: Attachment) -> bool:
    """Uploader, participants of its session or request, managers."""
    if user.id == a.uploader_id or user.role == "manager":
        return True
    node = node_of(request)
    if a.session_id:
        session = await node.hub.sessions.get(a.session_id)
        if session is not None and user.id in session.participants():
            return True
    if a.request_id:
        req = await node.hub.requests.get(a.request_id)
        if req is not None and (
            req.customer_id == user.id or await node.hub.requests.offer(req.id, user.id)
        ):
            return True
    # Posted in the chat of a session of his (posting links it there too, even
    # when it was first linked to another session).
    posted = await node.db.fetchone(
        "SELECT 1 FROM messages m JOIN sessions s ON s.id = m.session_id"
        " WHERE m.attachment_id = ? AND (s.customer_id = ? OR s.expert_id = ?) LIMIT 1",
        (a.id, user.id, user.id),
    )
    return posted is not None


@api
async def upload(request: Request) -> Response:
    """``POST /api/attachments``: ``file``; optional ``session_id``, ``request_id``, ``kind``."""
    node = node_of(request)
    user = await current_user(request)
    limit = node.settings.max_attachment
    length = request.headers.get("content-length")
    if length is None:
        raise LengthRequired("send Content-Length with uploads")
    if int(length) > limit + FORM_OVERHEAD:
        raise TooLarge(f"attachments are at most {limit} bytes")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as exc:  # a malformed form, or more than one file
        raise InvalidField(f"not an upload form: {exc.detail}", "file") from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidField("a multipart field `file` is required", "file")
        session_id = str(form.get("session_id") or "") or None
        request_id = str(form.get("request_id") or "") or None
        kind = str(form.get("kind") or "file")
        if kind not in ("file", "recording"):
            raise InvalidField("kind is file or recording", "kind")
        if session_id:
            session = await node.hub.sessions.get(session_id)
            if session is None or user.id not in session.participants():
                raise NotFound("no such session")
        if request_id:
            req = await node.hub.requests.get(request_id)
            if req is None or req.customer_id != user.id:
                raise NotFound("no such request")
        if kind == "recording" and not session_id:
            raise InvalidField("a recording belongs to a session", "session_id")
        writer = BlobWriter(node.attachments.root, limit)
        try:
            while chunk := await file.read(CHUNK):
                if not writer.write(chunk):
                    raise TooLarge(f"attachments are at most {limit} bytes")
            sha = writer.commit()
        except BaseException:
            writer.discard()
            raise
        name = (file.filename or "file").replace("/", "_")[-200:]
        attachment = node.attachments.new(
            user.id,
            sha,
            name,
            writer.size,
            file.content_type or "application/octet-stream",
            kind,
            session_id,
            request_id,
        )
        async with node.db.transaction() as conn:
            await node.attachments.insert(conn, attachment, to_ms(node.clock.now()))
    finally:
        await form.close()
    return json_response({"attachment": attachment.to_wire()}, 201)


@api
async def download(request: Request) -> Response:
    """``GET /api/attachments/{id}``: the bytes, to those who may read them; 404 otherwise."""
    node = node_of(request)
    user = await current_user(request)
    a = await node.attachments.get(request.path_params["attachment_id"])
    if a is None or not await may_read(request, user, a):
        raise NotFound("no such attachment")
    return FileResponse(node.attachments.path(a.sha256), media_type=a.content_type, filename=a.name)


routes = [
    Route("/api/attachments", upload, methods=["POST"]),
    Route("/api/attachments/{attachment_id}", download, methods=["GET"]),
]
