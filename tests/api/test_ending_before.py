"""`ending_before` on every list of the API (SPEC §6, Stripe's semantics), over HTTP on a real
book: the page just before an object, still in the list's order, the nearest `limit` objects,
`has_more` saying whether more come before them. Walking a list back from its end with
`ending_before` gives the pages the walk forward with `starting_after` gave; the log, whose
entries have no id, walks back with its pages' `Recoup-Previous-Cursor`. Both cursors at once,
or an id that is no object of the list, are a 422 naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.enums import Event
from recoup.log.service import log
from recoup.models import Document
from recoup.webhooks.service import enqueue_events
from tests.api.conftest import assert_problem
from tests.runs.test_run_e2e import CUSTOMERS, DUE, POLICY_YAML, Cli, invoice_csv

ON = (DUE + timedelta(days=16)).isoformat()  # the business date the late invoices are read on

# every list route of the API and the filters it is read with here (`{endpoint}`: the
# webhook endpoint with deliveries)
LISTS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/plans", {}),
    ("/api/v1/late-invoices", {"on": ON}),
    ("/api/v1/customers", {}),
    ("/api/v1/invoices", {}),
    ("/api/v1/log", {}),
    ("/api/v1/tasks", {"status": "open", "on": ON}),
    ("/api/v1/charges", {}),
    ("/api/v1/runs", {}),
    ("/api/v1/documents", {}),
    ("/api/v1/webhooks", {}),
    ("/api/v1/webhooks/{endpoint}/deliveries", {}),
    ("/api/v1/templates", {}),
    ("/api/v1/actions", {}),
    ("/api/v1/policies", {}),
    ("/api/v1/policies/Standard/levels", {}),
]

MORE_CUSTOMERS = "\n".join(
    [
        CUSTOMERS.splitlines()[0],
        *(f"C{n},Customer {n},c{n}@example.test,,en,FR,EUR,smb,true,transfer,,active,false"
          for n in (3, 4, 5)),
    ]
) + "\n"  # fmt: skip

# a third template and two more policies, so the lists have pages
FRENCH_NOTICE = (
    '  - {code: notice, channel: email, language: fr, subject: "Relance", body: "Payez."}\n'
)

MORE_POLICIES = """
  - name: Small
    priority: 20
    levels:
      - {code: only_notice, days: 5, end: true, actions: [email_notice]}
  - name: Large
    priority: 30
    levels:
      - {code: only_call, days: 5, end: true, actions: [call]}
"""


@pytest.fixture
def book(
    env: dict[str, str], tmp_path: Path, admin: TestClient, session_factory: sessionmaker[Session]
) -> dict[str, str]:
    """Five customers owing seven invoices (due dates tied and not), three runs (plans, fees,
    a call task each), five letters (two made at the same moment), three webhook endpoints
    and five deliveries to the first. The path parameters of the lists."""
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE - timedelta(days=1), "200.00", "EUR"),
            ("I5", "C2", DUE, "80.00", "USD"),
        )
    )
    policy = POLICY_YAML.format(
        mode="invoice", catch_up="latest", transition="days_overdue", second_min=""
    )
    policy = policy.replace("templates:\n", "templates:\n" + FRENCH_NOTICE) + MORE_POLICIES
    cli("config", "apply", cli.file("policy.yaml", policy))
    cli("import", "customers", cli.file("more.csv", MORE_CUSTOMERS))
    more = invoice_csv(
        ("I3", "C3", DUE, "300.00", "EUR"),
        ("I4", "C4", DUE - timedelta(days=2), "400.00", "EUR"),
        ("I6", "C5", DUE, "150.00", "EUR"),
        ("I7", "C3", DUE - timedelta(days=1), "250.00", "EUR"),
    )
    cli("import", "invoices", cli.file("more-invoices.csv", more))
    for day in (5, 10, 15):
        cli.run(day)
    t0 = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    with session_factory.begin() as session:
        session.add_all(
            Document(
                plan_id=None,
                kind="letter",
                path=f"/data/documents/{n}.pdf",
                invoice_ids=["I1"],
                created_at=t0 + timedelta(minutes=min(n, 3)),
            )
            for n in range(5)
        )
    endpoints = [
        admin.post("/api/v1/webhooks", json={"url": f"https://{name}.example/hook"}).json()
        for name in ("a", "b", "c")
    ]
    with session_factory.begin() as session:
        for _ in range(5):
            log(session, Event.plan_opened, customer_id="C1")
        session.flush()
        enqueue_events(session)
    return {"endpoint": str(endpoints[0]["id"])}


def _get(client: TestClient, path: str, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert list(page) == ["object", "data", "has_more"] and page["object"] == "list"
    return page, response.headers


def _is_log(path: str) -> bool:
    return path.endswith("/log")


def _forward(
    client: TestClient, path: str, params: dict[str, str], limit: int
) -> list[tuple[dict[str, Any], Any]]:
    """Every page from the first, each `starting_after` the last object of the one before (the
    log: its Recoup-Next-Cursor)."""
    pages = [_get(client, path, {**params, "limit": limit})]
    while pages[-1][0]["has_more"]:
        page, headers = pages[-1]
        after = headers["Recoup-Next-Cursor"] if _is_log(path) else page["data"][-1]["id"]
        pages.append(_get(client, path, {**params, "limit": limit, "starting_after": after}))
    return pages


def _first_cursor(path: str, page: dict[str, Any], headers: Any) -> str:
    """What `ending_before` takes for the page before this one."""
    return str(headers["Recoup-Previous-Cursor"] if _is_log(path) else page["data"][0]["id"])


def _backward(
    client: TestClient, path: str, params: dict[str, str], limit: int, last: tuple[Any, Any]
) -> list[tuple[dict[str, Any], Any]]:
    """Every page before `last`, nearest first, each `ending_before` the first object of the
    one after it, until `has_more` is false."""
    pages = []
    before = _first_cursor(path, *last)
    while True:
        page, headers = _get(client, path, {**params, "limit": limit, "ending_before": before})
        assert page["data"], f"{path}: an empty page before {before!r}"
        pages.append((page, headers))
        if not page["has_more"]:
            return pages
        before = _first_cursor(path, page, headers)


@pytest.mark.parametrize(("path", "params"), LISTS, ids=[path for path, _ in LISTS])
def test_ending_before_walks_every_list_back(
    book: dict[str, str], admin: TestClient, path: str, params: dict[str, str]
) -> None:
    path = path.format(**book)
    whole, _ = _get(admin, path, {**params, "limit": 100})
    rows = whole["data"]
    assert not whole["has_more"] and len(rows) >= 3, f"{path}: too few to walk"
    for limit in (1, 2):
        forward = _forward(admin, path, params, limit)
        assert [row for page, _ in forward for row in page["data"]] == rows
        backward = _backward(admin, path, params, limit, forward[-1])
        # the pages forward gave, each in the list's order; more before each but the first
        assert [p["data"] for p, _ in reversed(backward)] == [p["data"] for p, _ in forward[:-1]]
        assert [p["has_more"] for p, _ in backward] == [True] * (len(backward) - 1) + [False]
        if _is_log(path):  # read backward, a page has one after it, one before while has_more
            for page, headers in backward:
                assert "Recoup-Next-Cursor" in headers
                assert ("Recoup-Previous-Cursor" in headers) is page["has_more"]

    # the nearest objects before the last one, however many are asked for
    last = _forward(admin, path, params, 1)[-1]
    before_last = {**params, "ending_before": _first_cursor(path, *last)}
    one, _ = _get(admin, path, {**before_last, "limit": 1})
    assert one == {"object": "list", "data": [rows[-2]], "has_more": True}
    two, _ = _get(admin, path, {**before_last, "limit": 2})
    assert two == {"object": "list", "data": rows[-3:-1], "has_more": len(rows) > 3}
    every, _ = _get(admin, path, {**before_last, "limit": 100})
    assert every == {"object": "list", "data": rows[:-1], "has_more": False}
    if not _is_log(path):  # nothing comes before the first object (the log has no id for it)
        nothing, _ = _get(admin, path, {**params, "ending_before": rows[0]["id"]})
        assert nothing == {"object": "list", "data": [], "has_more": False}

    # refused: both cursors at once, and an id that is no object of the list
    first = _forward(admin, path, params, 1)[0]
    after = first[1]["Recoup-Next-Cursor"] if _is_log(path) else rows[0]["id"]
    both = admin.get(path, params={**params, "starting_after": after, **before_last})
    body = assert_problem(both, 422)
    assert [e["field"] for e in body["errors"]] == ["starting_after", "ending_before"]
    assert body["detail"] == "starting_after and ending_before: give one of them, not both"
    body = assert_problem(admin.get(path, params={**params, "ending_before": "999999"}), 422)
    assert [e["field"] for e in body["errors"]] == ["ending_before"]
    if _is_log(path):
        assert body["detail"] == "ending_before: not a cursor this list gave out"
    else:
        assert body["detail"] == "ending_before: no object '999999' in this list"


def test_a_delivery_of_another_endpoint_is_no_object_of_its_list(
    book: dict[str, str], admin: TestClient
) -> None:
    mine = admin.get(f"/api/v1/webhooks/{book['endpoint']}/deliveries").json()["data"]
    other = int(book["endpoint"]) + 1
    response = admin.get(
        f"/api/v1/webhooks/{other}/deliveries", params={"ending_before": mine[0]["id"]}
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["ending_before"]


def test_the_log_pages_point_to_their_neighbours(book: dict[str, str], admin: TestClient) -> None:
    """Forward, a page has a Recoup-Next-Cursor while `has_more`, and a Recoup-Previous-Cursor
    once it started after a cursor."""
    pages = _forward(admin, "/api/v1/log", {}, 3)
    assert len(pages) >= 3
    for n, (page, headers) in enumerate(pages):
        assert ("Recoup-Next-Cursor" in headers) is page["has_more"]
        assert ("Recoup-Previous-Cursor" in headers) is (n > 0)


def test_every_list_is_walked_back_here(client: TestClient) -> None:
    """The lists are the operations the OpenAPI gives the page parameters."""
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    paged = {
        path
        for path, operations in paths.items()
        if any(
            p["name"] == "ending_before" for p in operations.get("get", {}).get("parameters", [])
        )
    }
    walked = {
        path.replace("{endpoint}", "{endpoint_id}").replace("/Standard/", "/{name}/")
        for path, _ in LISTS
    }
    assert walked == paged


def test_the_openapi_describes_ending_before(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200, schema.text
    operation = schema.json()["paths"]["/api/v1/plans"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "ending_before"]
    assert "page before it" in parameter["description"]
    assert "not supported" not in parameter["description"].lower()
