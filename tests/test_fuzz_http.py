"""Fuzzing the HTTP API from its own ``/openapi.json`` (schemathesis), on a bounded budget.

A real node (uvicorn on a free port, SQLite in a temporary data dir) runs in a
thread of its own, with a customer, an expert, a manager, an ended and charged
session, its refund claim, an open request, an attachment and a notification in
it. Schemathesis loads the schema the node serves and runs every operation,
valid and invalid input alike, once with the bearer token of each role and once
without one. Path parameters are sometimes the ids of the objects above, so
that the routes behind an id are reached, not only their 404.

Every answer must be no 5xx, a status code the schema declares for the route,
a declared content type, and a body that matches the declared schema (every
error body is the contract's ``Error``).

The budget is fixed and the generation derandomized, so that CI runs the same
cases every time: ``MAX_EXAMPLES`` per operation and generation phase.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clients.rtclient import Api
from rtserver.http.ops import openapi_document
from tests.portal import auth, ended_session, new_manager
from tests.servers import (
    Clients,
    Node,
    new_customer,
    new_expert,
    node_settings,
    run_node_in_thread,
)

# Cases per operation and phase: the whole module stays around a minute on 2 cores.
MAX_EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class World:
    """The live node and the objects in it, by what the fuzzer needs of them."""

    node: Node
    tokens: dict[str, str | None] = field(default_factory=dict)
    # Real ids for each path parameter name, mixed into the generated ones.
    ids: dict[str, list[str]] = field(default_factory=dict)


async def _seed(node: Node, data_dir: Path, clients: Clients) -> World:
    """A customer, an expert, a manager and the objects that the routes with ids name."""
    api = Api(node.http)
    try:
        ended = await ended_session(node, api, clients)
        ctoken, etoken = ended.customer_token, ended.expert_token
        sid = ended.session_id
        r = await api.http.post(
            f"/api/sessions/{sid}/refund-claim", json={"reason": "no help"}, headers=auth(ctoken)
        )
        r.raise_for_status()
        claim_id = r.json()["claim"]["id"]
        mtoken = await new_manager(node, api, data_dir)
        # Suspend and restore fall on this one, so that the three roles stay usable.
        other, _ = await new_expert(api, "Other expert")
        _, other_customer = await new_customer(api)
        c = await clients.connect(node, ctoken)
        created = await c.call(
            "request.create", kind="instant", title="Open", skills=["nobody"], language="en"
        )
        rid = created["request"]["id"]
        r = await api.http.post(
            "/api/attachments",
            files={"file": ("a.txt", b"hello", "text/plain")},
            data={"session_id": sid},
            headers=auth(ctoken),
        )
        r.raise_for_status()
        aid = r.json()["attachment"]["id"]
        r = await api.http.get("/api/notifications", headers=auth(etoken))
        r.raise_for_status()
        nids = [str(n["id"]) for n in r.json()["notifications"]]
        return World(
            node,
            tokens={
                "customer": ctoken,
                "expert": etoken,
                "manager": mtoken,
                "other": other_customer,
                "anonymous": None,
            },
            ids={
                "session_id": [sid],
                "claim_id": [claim_id],
                "request_id": [rid],
                "attachment_id": [aid],
                "notification_id": nids,
                "user_id": [other["id"]],
            },
        )
    finally:
        await api.aclose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The seeded node, shared by the module (seeding takes a few seconds)."""
    data_dir = tmp_path_factory.mktemp("fuzz-http")
    settings = node_settings(data_dir, billing_check="200ms")

    async def seed(node: Node, clients: Clients) -> World:
        return await _seed(node, data_dir, clients)

    with run_node_in_thread(settings, seed) as (_, w):
        yield w


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """One HTTP session for every call."""
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def live_schema(world: World) -> Any:
    """The schema the node serves."""
    return schemathesis.openapi.from_url(world.node.http + "/openapi.json")


def _cases(operation: Any, ids: dict[str, list[str]]) -> st.SearchStrategy[schemathesis.Case]:
    """Valid and invalid cases; where the path names objects, also with the real ids."""
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(generation_mode=m) for m in modes]
    names = [p.name for p in operation.path_parameters]
    if names and all(ids.get(n) for n in names):
        real = {n: ids[n][0] for n in names}
        strategies += [
            operation.as_strategy(generation_mode=m, path_parameters=real) for m in modes
        ]
    return st.one_of(strategies)


OPERATIONS = [
    (method.upper(), path) for path, item in openapi_document()["paths"].items() for method in item
]


# Schemathesis draws from `random` inside some of its negative strategies; that is
# its business, not a flaw of the server under test.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_as_documented_for_every_role(
    method: str, path: str, world: World, live_schema: Any, http: requests.Session
) -> None:
    operation = live_schema[path][method]

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_cases(operation, world.ids))
    def run(case: schemathesis.Case) -> None:
        for token in world.tokens.values():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = case.call_and_validate(session=http, headers=headers, checks=CHECKS, timeout=30)
            seen.add(r.status_code)

    seen: set[int] = set()
    run()
    # The fuzzer got past the door: some call was authorized and found its object.
    assert seen - {401, 404}, f"only {sorted(seen)}"
    if method == "GET":
        assert any(200 <= s < 300 for s in seen), f"no success among {sorted(seen)}"
