"""``rtserver migrate``: the schema brought up to date, and an embedded deployment
moved into PostgreSQL (``--from-sqlite``), checked before it is committed.

The source is a real data dir written by a real node (accounts, an ended and
charged session with its transcript, an attachment, the signing key); the
target a database of the session's private PostgreSQL cluster. The copy is
then served by a node on PostgreSQL with a data dir of its own: the same
logins, the same tokens, the same history, ledger and file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clients.rtclient import Api
from rtserver.storage.pg_schema import PG_MIGRATIONS
from tests.pg import PgCluster
from tests.portal import FAST_RATE, auth, ended_session, ledger
from tests.servers import Clients, node_settings, rtserver_cli, run_node
from tests.storage import query_url
from tests.test_attachments import download, uploaded

PASSWORD = "password-123"


async def embedded_deployment(data_dir: Path) -> dict[str, Any]:
    """A real node's data dir with an ended, charged session and an attachment in it."""
    async with run_node(node_settings(data_dir, billing_check="200ms")) as node:
        api = Api(node.http)
        clients = Clients()
        try:
            ended = await ended_session(node, api, clients, rate=FAST_RATE)
            file = await uploaded(
                api, ended.customer_token, b"the log file", session_id=ended.session_id
            )
        finally:
            await clients.close()
            await api.aclose()
    return {"ended": ended, "file": file}


async def test_migrate_brings_a_fresh_database_up_to_date(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database()
    status, out, err = await rtserver_cli("migrate", "--database-url", url)
    assert status == 0, err
    assert out.strip() == f"schema up to date: {len(PG_MIGRATIONS)}"
    # Again: nothing to do, same version.
    status, out, err = await rtserver_cli("migrate", "--database-url", url)
    assert status == 0, err
    assert out.strip() == f"schema up to date: {len(PG_MIGRATIONS)}"


async def test_an_embedded_deployment_is_copied_checked_and_served_from_postgresql(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    source = tmp_path / "embedded"
    source.mkdir()
    made = await embedded_deployment(source)
    ended, file = made["ended"], made["file"]
    url = pg_cluster.new_database()

    status, out, err = await rtserver_cli(
        "migrate", "--from-sqlite", str(source), "--database-url", url
    )
    assert status == 0, err
    assert out.strip().endswith("copied and checked")
    assert "ledger: 3 rows" in out and "attachments' bytes: 1 blobs" in out

    # A node on PostgreSQL, on a data dir of its own (nothing of the source's).
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    async with run_node(node_settings(fresh, database_url=url)) as node:
        api = Api(node.http)
        try:
            # A token issued before the move still works: the signing key moved too.
            me = await api.http.get("/api/me", headers=auth(ended.customer_token))
            assert me.status_code == 200, me.text
            assert me.json()["user"]["id"] == ended.customer["id"]
            # And so does the password.
            login = {"email": ended.expert["email"], "password": PASSWORD}
            assert (await api.http.post("/api/auth/login", json=login)).status_code == 200
            # The history, its transcript and the file.
            got = await api.http.get(
                f"/api/sessions/{ended.session_id}/messages", headers=auth(ended.customer_token)
            )
            assert got.status_code == 200, got.text
            texts = [m.get("text") for m in got.json()["messages"]]
            assert "hello" in texts
            assert (await download(api, ended.customer_token, file["id"])).content == (
                b"the log file"
            )
        finally:
            await api.aclose()
    # The ledger is the source's, row for row, ids included.
    columns = "SELECT id, op, account, kind, amount_cents FROM ledger ORDER BY id"
    assert query_url(url, columns) == [
        {k: r[k] for k in ("id", "op", "account", "kind", "amount_cents")} for r in ledger(source)
    ]
    # The next row gets an id past the copied ones (the identity counter moved).
    last = max(r["id"] for r in ledger(source))
    assert (
        query_url(url, "SELECT nextval(pg_get_serial_sequence('ledger', 'id')) AS n")[0]["n"] > last
    )


async def test_a_copy_into_a_database_with_accounts_commits_nothing(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    source = tmp_path / "embedded"
    source.mkdir()
    await embedded_deployment(source)
    url = pg_cluster.new_database()
    copy = ("migrate", "--from-sqlite", str(source), "--database-url", url)
    status, _, err = await rtserver_cli(*copy)
    assert status == 0, err
    before = query_url(url, "SELECT count(*) AS n FROM ledger")[0]["n"]
    status, _, err = await rtserver_cli(*copy)
    assert status == 1
    assert "already holds accounts" in err
    assert query_url(url, "SELECT count(*) AS n FROM ledger")[0]["n"] == before


async def test_from_sqlite_needs_a_postgresql_target(tmp_path: Path) -> None:
    source = tmp_path / "embedded"
    source.mkdir()
    status, _, err = await rtserver_cli(
        "migrate", "--from-sqlite", str(source), "--data-dir", str(tmp_path / "other")
    )
    assert status != 0
    assert "--database-url" in err
