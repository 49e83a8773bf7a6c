"""Attachments over HTTP: upload (multipart) and download, with their permissions.

An upload's body is bounded while it streams by :class:`rtserver.http.bodies.BodyLimit`
(:func:`body_limits`), whatever its headers say. A download is served as a file to
save, never as a page: the type sent is the stored one only when it is on an
allow-list of types a browser cannot run (:func:`served_type`), else
``application/octet-stream``, with ``nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from rtserver.clock import to_ms
from rtserver.config import Settings
from rtserver.errors import InvalidField, NotFound, TooLarge
from rtserver.http.common import api, current_user, json_response, node_of
from rtserver.storage.attachments import Attachment
from rtserver.storage.blobs import LocalBlobs
from rtserver.storage.users import User

CHUNK = 256 * 1024
# Room for the multipart framing and small form fields around the file.
FORM_OVERHEAD = 64 * 1024
# Types served as themselves: none of them runs script in a browser (HTML, SVG,
# XML, JavaScript and anything unknown go out as application/octet-stream).
SAFE_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "video/mp4",
        "video/ogg",
        "video/webm",
    }
)
# Sent with every download: even a browser that ignored the type could run nothing.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private",
}


def body_limits(settings: Settings) -> Mapping[tuple[str, str], int]:
    """The upload route's body limit: ``--max-attachment`` and the form around it."""
    return {("POST", "/api/attachments"): settings.max_attachment + FORM_OVERHEAD}


def served_type(stored: str) -> str:
    """The type a download is sent with: the uploader's, if it is a safe one."""
    base = stored.split(";", 1)[0].strip().lower()
    return base if base in SAFE_TYPES else "application/octet-stream"


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
        blobs = node.attachments.blobs
        writer = blobs.writer(limit)
        try:
            while chunk := await file.read(CHUNK):
                if not writer.write(chunk):
                    raise TooLarge(f"attachments are at most {limit} bytes")
            sha = await blobs.keep(writer)
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
    blobs = node.attachments.blobs
    if isinstance(blobs, LocalBlobs):
        return FileResponse(
            blobs.path(a.sha256),
            media_type=served_type(a.content_type),
            filename=a.name,
            headers=DOWNLOAD_HEADERS,
            content_disposition_type="attachment",
        )
    # From the database: streamed a chunk at a time, with the size it was stored at
    # (the Content-Disposition as FileResponse writes it: it quotes any name).
    disposition = FileResponse("", filename=a.name, content_disposition_type="attachment").headers[
        "content-disposition"
    ]
    return StreamingResponse(
        blobs.chunks(a.sha256),
        media_type=served_type(a.content_type),
        headers={
            **DOWNLOAD_HEADERS,
            "content-length": str(a.size),
            "content-disposition": disposition,
        },
    )


routes = [
    Route("/api/attachments", upload, methods=["POST"]),
    Route("/api/attachments/{attachment_id}", download, methods=["GET"]),
]
