"""Attachments over HTTP (contract section 2) and in requests and session rooms.

Who may read a file is the contract's rule 8: the uploader, the participants
of the request or session it is linked to, and managers; anyone else gets
404. Bytes are stored once per content hash under ``<data-dir>/attachments``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.rtclient import Api, Client
from tests.servers import (
    Clients,
    Node,
    new_customer,
    new_expert,
    node_settings,
    rtserver_cli,
    run_node,
    unique,
)
from tests.storage import database_url, query, storage_flags
from tests.test_rooms import open_room

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    cs = Clients()
    yield cs
    await cs.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(
    api: Api,
    token: str,
    data: bytes,
    name: str = "notes.txt",
    content_type: str = "text/plain",
    **form: str,
) -> httpx.Response:
    return await api.http.post(
        "/api/attachments",
        files={"file": (name, data, content_type)},
        data=form,
        headers=auth(token),
    )


async def uploaded(api: Api, token: str, data: bytes, **kw: Any) -> dict[str, Any]:
    """Upload and return the attachment object (asserting 201)."""
    r = await upload(api, token, data, **kw)
    assert r.status_code == 201, r.text
    attachment: dict[str, Any] = r.json()["attachment"]
    return attachment


async def download(api: Api, token: str, attachment_id: str) -> httpx.Response:
    return await api.http.get(f"/api/attachments/{attachment_id}", headers=auth(token))


def assert_not_found(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


def blobs(data_dir: Path) -> list[str]:
    """Every blob kept, as ``<sha[:2]>/<sha>``, and every file under the attachments
    directory (temporary ones included: on PostgreSQL only spooled uploads are files)."""
    root = data_dir / "attachments"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    if database_url(data_dir) is None:
        return files
    rows = query(data_dir, "SELECT DISTINCT sha256 FROM blobs")
    return sorted([f"{r['sha256'][:2]}/{r['sha256']}" for r in rows] + files)


def blob_bytes(data_dir: Path, sha: str) -> bytes:
    """The bytes kept for a hash."""
    if database_url(data_dir) is None:
        return (data_dir / "attachments" / sha[:2] / sha).read_bytes()
    rows = query(data_dir, "SELECT data FROM blobs WHERE sha256 = ? ORDER BY chunk", (sha,))
    return b"".join(bytes(r["data"]) for r in rows)


def attachment_rows(data_dir: Path) -> int:
    return int(query(data_dir, "SELECT count(*) AS n FROM attachments")[0]["n"])


# --- upload and download ---------------------------------------------------------------------


async def test_upload_then_only_the_uploader_reads_it(node: Node, api: Api) -> None:
    _, token = await new_customer(api)
    data = os.urandom(3000) + b"\x00\r\n end"
    r = await upload(api, token, data, name="dump.bin", content_type="application/octet-stream")
    assert r.status_code == 201
    a = r.json()["attachment"]
    assert a["sha256"] == hashlib.sha256(data).hexdigest()
    assert a["size"] == len(data)
    assert a["name"] == "dump.bin"
    assert a["content_type"] == "application/octet-stream"
    assert a["kind"] == "file"
    assert isinstance(a["id"], str) and a["id"]

    got = await download(api, token, a["id"])
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"].startswith("application/octet-stream")

    _, other = await new_customer(api, name="Other")
    assert_not_found(await download(api, other, a["id"]))
    _, expert = await new_expert(api)
    assert_not_found(await download(api, expert, a["id"]))
    assert_not_found(await download(api, token, "a_no_such_attachment"))
    anonymous = await api.http.get(f"/api/attachments/{a['id']}")
    assert anonymous.status_code == 401
    no_token = await api.http.post("/api/attachments", files={"file": ("x.txt", b"x")})
    assert no_token.status_code == 401


async def test_uploads_to_what_is_not_yours_are_refused(
    node: Node, api: Api, clients: Clients, data_dir: Path
) -> None:
    room = await open_room(node, api, clients)
    _, btoken = await new_customer(api, name="B")
    b = await clients.connect(node, btoken)
    b_request = (
        await b.call("request.create", kind="instant", title="B's", skills=["go"], language="en")
    )["request"]
    _, atoken = await new_customer(api, name="A")
    own = await uploaded(api, atoken, b"mine")  # something on disk already
    rows, files = attachment_rows(data_dir), blobs(data_dir)

    # Another customer's request, a session A is not in, ones that do not exist.
    for form in (
        {"request_id": b_request["id"]},
        {"request_id": room.request_id},
        {"session_id": room.session_id},
        {"request_id": "r_nope"},
        {"session_id": "s_nope"},
    ):
        assert_not_found(await upload(api, atoken, b"not linked", **form))
    # An expert does not upload to a request either (only its customer does).
    assert_not_found(await upload(api, room.expert_token, b"x", request_id=room.request_id))
    # Bad forms.
    r = await upload(api, atoken, b"rec", kind="recording")  # a recording needs a session
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field"
    r = await upload(api, atoken, b"x", kind="video")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field"
    r = await api.http.post(
        "/api/attachments", files={"other": ("x.txt", b"x")}, headers=auth(atoken)
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field"
    assert attachment_rows(data_dir) == rows
    assert blobs(data_dir) == files
    assert (await download(api, atoken, own["id"])).content == b"mine"


async def test_a_malformed_form_is_a_client_error(node: Node, api: Api) -> None:
    _, token = await new_customer(api)
    r = await api.http.post(
        "/api/attachments",
        files=[("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))],
        headers=auth(token),
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_field"
    # A multipart body that does not parse is the client's error too.
    broken = await api.http.post(
        "/api/attachments",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n',
        headers={**auth(token), "Content-Type": "multipart/form-data"},
    )
    assert broken.status_code == 422, broken.text
    assert broken.json()["error"]["code"] == "invalid_field"


# --- requests --------------------------------------------------------------------------------


async def test_request_attachments_go_to_the_offered_experts_only(
    node: Node, api: Api, clients: Clients
) -> None:
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, otoken = await new_expert(api, name="Offered")
    offered = await clients.connect(node, otoken)
    await offered.call("presence", status="available")
    _, ntoken = await new_expert(api, name="Not offered", skills=("rust",))
    not_offered = await clients.connect(node, ntoken)
    await not_offered.call("presence", status="available")

    data = b"Traceback (most recent call last):\n  ...\n"
    a = await uploaded(api, ctoken, data, name="trace.txt")
    request = (
        await customer.call(
            "request.create",
            kind="instant",
            title="Crash",
            skills=["python"],
            language="en",
            attachment_ids=[a["id"]],
        )
    )["request"]
    assert request["notified"] == 1
    assert request["attachments"] == [a]
    offer = (
        await offered.wait_event("offer.new", lambda e: e["offer"]["request_id"] == request["id"])
    )["offer"]
    assert offer["attachments"] == [a]
    got = await download(api, otoken, a["id"])
    assert got.status_code == 200 and got.content == data
    assert_not_found(await download(api, ntoken, a["id"]))
    assert (await download(api, ctoken, a["id"])).content == data

    # An attachment belongs to one request: naming it again is not_found.
    again = await customer.request(
        "request.create",
        kind="instant",
        title="Again",
        skills=["python"],
        language="en",
        attachment_ids=[a["id"]],
    )
    assert again["type"] == "error" and again["code"] == "not_found"
    # Nor may a customer attach another's upload, or one that does not exist.
    _, other_token = await new_customer(api, name="Other")
    foreign = await uploaded(api, other_token, b"theirs")
    for aid in (foreign["id"], "a_nope"):
        reply = await customer.request(
            "request.create",
            kind="instant",
            title="Foreign",
            skills=["python"],
            language="en",
            attachment_ids=[aid],
        )
        assert reply["code"] == "not_found"
    # The expert who accepts keeps reading it in the session.
    await offered.call("offer.accept", request_id=request["id"])
    assert (await download(api, otoken, a["id"])).content == data
    assert_not_found(await download(api, ntoken, a["id"]))


# --- limits and storage ----------------------------------------------------------------------


async def test_an_upload_over_max_attachment_is_refused_and_nothing_kept(data_dir: Path) -> None:
    async with run_node(node_settings(data_dir, max_attachment=1000)) as node:
        api = Api(node.http)
        try:
            _, token = await new_customer(api)
            exact = await uploaded(api, token, b"e" * 1000)  # at the limit is fine
            assert exact["size"] == 1000
            rows, files = attachment_rows(data_dir), blobs(data_dir)
            assert len(files) == 1
            # Just over: refused while reading. Far over: refused by its Content-Length.
            for size in (1001, 5000, 70_000):
                r = await upload(api, token, b"o" * size)
                assert r.status_code == 413, (size, r.text)
                assert r.json()["error"]["code"] == "too_large"
                assert blobs(data_dir) == files, size
                assert attachment_rows(data_dir) == rows, size
        finally:
            await api.aclose()


async def test_downloads_are_files_to_save_never_pages(node: Node, api: Api) -> None:
    """The uploader names the type; the server serves it only if a browser cannot run it."""
    _, token = await new_customer(api)
    cases = [
        ("page.html", "text/html", "application/octet-stream"),
        ("logo.svg", "image/svg+xml", "application/octet-stream"),
        ("x.js", "text/javascript; charset=utf-8", "application/octet-stream"),
        ("shot.png", "image/png", "image/png"),
        ("notes.txt", "Text/Plain; charset=utf-8", "text/plain"),
        ("paper.pdf", "application/pdf", "application/pdf"),
    ]
    for name, stored, served in cases:
        a = await uploaded(api, token, b"<script>alert(1)</script>", name=name, content_type=stored)
        assert a["content_type"] == stored  # what the uploader said is kept and shown
        got = await download(api, token, a["id"])
        assert got.status_code == 200
        assert got.headers["content-type"].split(";")[0] == served, name
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in got.headers["content-security-policy"]


async def test_identical_content_is_stored_once_under_two_ids(
    node: Node, api: Api, data_dir: Path
) -> None:
    _, token = await new_customer(api)
    _, other = await new_customer(api, name="Other")
    data = b"the same bytes, " * 100
    sha = hashlib.sha256(data).hexdigest()
    first = await uploaded(api, token, data, name="one.txt")
    second = await uploaded(api, token, data, name="two.txt")
    theirs = await uploaded(api, other, data, name="three.txt")
    assert len({first["id"], second["id"], theirs["id"]}) == 3
    assert first["sha256"] == second["sha256"] == theirs["sha256"] == sha
    assert blobs(data_dir) == [f"{sha[:2]}/{sha}"]
    assert blob_bytes(data_dir, sha) == data
    for a in (first, second):
        got = await download(api, token, a["id"])
        assert got.content == data
        assert a["name"] in got.headers["content-disposition"]
    # Sharing bytes shares no permission.
    assert_not_found(await download(api, token, theirs["id"]))
    assert_not_found(await download(api, other, first["id"]))
    assert (await download(api, other, theirs["id"])).content == data


# --- sessions --------------------------------------------------------------------------------


async def test_an_attachment_posted_in_the_chat(node: Node, api: Api, clients: Clients) -> None:
    room = await open_room(node, api, clients)
    sid = room.session_id
    _, stoken = await new_customer(api, name="Stranger")
    data = b"\x89PNG not really"
    a = await uploaded(
        api, room.customer_token, data, name="screen.png", content_type="image/png", session_id=sid
    )
    sent = await room.customer.call(
        "message.send", session_id=sid, cid="att-1", kind="attachment", attachment_id=a["id"]
    )
    assert sent["seq"] == 1
    ev = await room.expert.wait_event("message", lambda e: e["seq"] == 1)
    assert ev["kind"] == "attachment"
    assert ev["attachment"] == a
    assert ev["attachment"]["name"] == "screen.png" and ev["attachment"]["size"] == len(data)
    assert ev["text"] is None and ev["code"] is None
    got = await download(api, room.expert_token, a["id"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"].startswith("image/png")
    assert_not_found(await download(api, stoken, a["id"]))
    joined = await room.expert.call("session.join", session_id=sid)
    assert joined["messages"][0]["attachment"] == a

    # An upload linked to nothing is linked to the session by posting it.
    loose = await uploaded(api, room.expert_token, b"expert's notes")
    assert_not_found(await download(api, room.customer_token, loose["id"]))
    await room.expert.call(
        "message.send", session_id=sid, cid="att-2", kind="attachment", attachment_id=loose["id"]
    )
    got = await download(api, room.customer_token, loose["id"])
    assert got.status_code == 200 and got.content == b"expert's notes"
    assert_not_found(await download(api, stoken, loose["id"]))

    # Nobody posts someone else's unlinked upload.
    stranger_file = await uploaded(api, stoken, b"not yours")
    for c in (room.customer, room.expert):
        reply = await c.request(
            "message.send",
            session_id=sid,
            cid=unique("x"),
            kind="attachment",
            attachment_id=stranger_file["id"],
        )
        assert reply["code"] == "not_found"
    assert_not_found(await download(api, room.expert_token, stranger_file["id"]))
    joined = await room.customer.call("session.join", session_id=sid)
    assert [m["cid"] for m in joined["messages"]] == ["att-1", "att-2"]


async def test_a_file_posted_in_a_second_session_is_readable_there(
    node: Node, api: Api, clients: Clients
) -> None:
    """A customer's file from one session, posted in another: its expert may read it."""
    first = await open_room(node, api, clients)
    a = await uploaded(api, first.customer_token, b"log", session_id=first.session_id)
    await first.expert.call("session.end", session_id=first.session_id)
    # The same customer, another expert, another session.
    _, etoken = await new_expert(api, name="Second expert")
    expert2 = await clients.connect(node, etoken)
    await expert2.call("presence", status="available")
    await first.expert.call("presence", status="away")
    rid = (
        await first.customer.call(
            "request.create", kind="instant", title="Again", skills=["python"], language="en"
        )
    )["request"]["id"]
    await expert2.wait_event("offer.new", lambda e: e["offer"]["request_id"] == rid)
    sid2 = (await expert2.call("offer.accept", request_id=rid))["session"]["id"]
    sent = await first.customer.request(
        "message.send", session_id=sid2, cid="old-file", kind="attachment", attachment_id=a["id"]
    )
    assert sent["type"] == "ok"
    ev = await expert2.wait_event("message", lambda e: e["cid"] == "old-file")
    assert ev["attachment"]["id"] == a["id"]
    # What the chat shows, its participants can open.
    got = await download(api, etoken, a["id"])
    assert got.status_code == 200 and got.content == b"log"


async def test_session_lists_files_and_recordings(node: Node, api: Api, clients: Clients) -> None:
    room = await open_room(node, api, clients)
    sid = room.session_id
    _, stoken = await new_customer(api, name="Stranger")
    f = await uploaded(api, room.customer_token, b"a file", name="f.txt", session_id=sid)
    rec = await uploaded(
        api,
        room.expert_token,
        b"\x1a\x45\xdf\xa3 webm",
        name="call.webm",
        content_type="video/webm",
        session_id=sid,
        kind="recording",
    )
    assert f["kind"] == "file" and rec["kind"] == "recording"
    for token in (room.customer_token, room.expert_token):
        r = await api.http.get(f"/api/sessions/{sid}", headers=auth(token))
        assert r.status_code == 200
        session = r.json()["session"]
        assert session["attachments"] == [f]
        assert session["recordings"] == [rec]
    assert (await download(api, room.customer_token, rec["id"])).content == b"\x1a\x45\xdf\xa3 webm"
    assert (await download(api, room.expert_token, f["id"])).content == b"a file"
    stranger = await api.http.get(f"/api/sessions/{sid}", headers=auth(stoken))
    assert_not_found(stranger)
    assert_not_found(await download(api, stoken, rec["id"]))


async def create_manager(data_dir: Path, email: str, password: str) -> None:
    status, out, err = await rtserver_cli(
        "user", "create", "--email", email, "--password", password, "--name", "Manager",
        "--role", "manager", *storage_flags(data_dir), timeout=60,
    )  # fmt: skip
    assert status == 0, (out, err)


async def test_a_manager_reads_any_attachment(
    node: Node, api: Api, clients: Clients, data_dir: Path
) -> None:
    room = await open_room(node, api, clients)
    loose = await uploaded(api, room.customer_token, b"unlinked")
    in_session = await uploaded(api, room.expert_token, b"linked", session_id=room.session_id)
    email, password = f"{unique('m')}@example.com", "manager-password-1"
    await create_manager(data_dir, email, password)
    r = await api.http.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200
    assert r.json()["user"]["role"] == "manager"
    mtoken = r.json()["token"]
    for a, data in ((loose, b"unlinked"), (in_session, b"linked")):
        got = await download(api, mtoken, a["id"])
        assert got.status_code == 200 and got.content == data
    session = await api.http.get(f"/api/sessions/{room.session_id}", headers=auth(mtoken))
    assert session.status_code == 200
    assert session.json()["session"]["attachments"] == [in_session]
    # A manager's socket is still a user's: the room itself is for its participants.
    manager = await Client.connect(node.ws, mtoken)
    try:
        reply = await manager.request("session.join", session_id=room.session_id)
        assert reply["code"] == "not_found"
    finally:
        await manager.close()
