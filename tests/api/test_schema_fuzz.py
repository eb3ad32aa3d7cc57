"""schemathesis over the app's own OpenAPI schema (issue 11): every operation the app serves,
a bounded number of generated requests each (valid and invalid ones), as the admin key, on a
book with real rows, so that generated path and query ids also hit real objects. No answer
may be a 5xx, and each must keep to the schema: a documented status code, its content type,
headers and body.

The operations are read from the live schema, so a route added later is fuzzed too. Cases per
operation: RECOUP_FUZZ_EXAMPLES (default 6; with the first slice's 15 operations the fuzzing
takes ~5 s a database on a quiet machine, ~20 s at load 13 on 2 cores; 60 found nothing more)."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy import select

from recoup.api.app import PREFIX, create_app
from recoup.apikeys.service import create_key
from recoup.core.db import Base
from recoup.core.sessions import transaction
from tests.api.conftest import auth
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

EXAMPLES = int(os.environ.get("RECOUP_FUZZ_EXAMPLES", "6"))

# Each operation's cases come from `APIOperation.as_strategy` under one Hypothesis test of
# EXAMPLES cases (not schemathesis's pytest plugin, whose lazy fixture schemas need a pytest
# private attribute 9.x removed): the seeded database is built once per backend for them all.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def _as_served(app: ASGIApp) -> ASGIApp:
    """The app as uvicorn serves it: Starlette re-raises an error after sending its 500, for the
    server to log; a server logs it and answers the next request, so the 500 is what the
    checks see (not_a_server_error names it) instead of an exception out of the transport."""

    async def served(scope: Scope, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            logger.exception("the app failed (answered 500)")

    return served


def _singular(table: str) -> str:
    if table.endswith("ies"):
        return table[:-3] + "y"
    return table[:-1] if table.endswith("s") else table


def _ids(db_url: str) -> dict[str, list[Any]]:
    """Up to 5 ids of every table with an `id`, by the singular of its name: {"plan": [1, 2],
    "invoice": ["I1", …], …}."""
    found: dict[str, list[Any]] = {}
    with transaction(db_url) as session:
        for table in Base.metadata.sorted_tables:
            if "id" in table.c:
                ids = list(session.scalars(select(table.c.id).order_by(table.c.id).limit(5)))
                if ids:
                    found[_singular(table.name)] = ids
    return found


def _real_ids(ids: dict[str, list[Any]]) -> Callable[[Any, dict[str, Any] | None], Any]:
    """A flatmap hook: each `x_id` path parameter and each `x` query parameter (`plan`,
    `customer`, `invoice`: the API's filters) that names a table may also be one of its real ids,
    so requests reach real objects and not only 404s; `starting_after` any id."""
    every = [value for values in ids.values() for value in values]

    def choices(name: str) -> list[Any] | None:
        if name == "starting_after":
            return every
        return ids.get(name.removesuffix("_id"))

    def hook(_context: Any, values: dict[str, Any] | None) -> Any:
        if not values:
            return st.just(values)
        strategies: dict[str, st.SearchStrategy[Any]] = {}
        for name, value in values.items():
            real = choices(name)
            strategies[name] = (
                st.just(value) if not real else st.one_of(st.just(value), st.sampled_from(real))
            )
        return st.fixed_dictionaries(strategies)

    return hook


@pytest.fixture
def admin_key(db_url: str) -> str:
    with transaction(db_url) as session:
        return create_key(session, name="fuzz", role="admin").key


@pytest.fixture
def seeded(env: dict[str, str], tmp_path: Path) -> None:
    """A book through the CLI: C1 owes I1..I3 (EUR), C2 owes I4 (USD); runs on days 5 and 16
    open plans and reach the levels with a fee (charges) and a call (a task)."""
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE, "200.00", "EUR"),
            ("I3", "C1", DUE, "300.00", "EUR"),
            ("I4", "C2", DUE, "80.00", "USD"),
        )
    )
    cli.run(5)
    cli.run(16)


@pytest.fixture
def api_schema(db_url: str, seeded: None) -> OpenApiSchema:
    app = create_app(db_url)
    schema = schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", _as_served(app))
    hook = _real_ids(_ids(db_url))
    schema.hooks.register_hook_with_name(hook, "flatmap_path_parameters")
    schema.hooks.register_hook_with_name(hook, "flatmap_query")
    return schema


def _fuzz(operation: Any, key: str) -> None:
    """EXAMPLES generated requests to one operation, valid and invalid ones; Hypothesis
    shrinks a failing one to the smallest it can find."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=auth(key), checks=CHECKS)

    check()


def test_every_operation_answers_within_its_schema(
    api_schema: OpenApiSchema, admin_key: str
) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        if not isinstance(result, Ok):  # an operation schemathesis cannot read
            failures.append(str(result.err()))
            continue
        operation = result.ok()
        operations += 1
        try:  # every operation is fuzzed, and all their failures reported together
            _fuzz(operation, admin_key)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is the latter
            failures.append(f"{operation.label}:\n{exc}")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)


def test_every_operation_documents_its_problems() -> None:
    """Without a database: the problems each operation may answer are in its OpenAPI, as
    application/problem+json (FastAPI's own application/json 422 replaced)."""
    document = create_app("sqlite:///:memory:").openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = {"401", "403"} | ({"404", "409"} if method != "get" else set())
            if "{" in path:
                expected.add("404")
            if operation.get("parameters") or "requestBody" in operation:
                expected.add("422")
            assert expected <= set(responses), f"{method} {path}: {sorted(responses)}"
            for status in expected:
                assert list(responses[status]["content"]) == ["application/problem+json"]
