"""The schema built by the migrations is the schema of the models."""

from __future__ import annotations

from datetime import UTC, date, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, insert, select, text
from sqlalchemy.orm import Session

from recoup import models  # noqa: F401  (registers the tables)
from recoup.core.db import Base
from recoup.core.migrate import upgrade
from recoup.plans.links import plan_links


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrading_a_0001_database_keeps_its_plans_links_and_check_dates(
    empty_engine: Engine,
) -> None:
    """0002 drops the link rows that repeat an invoice-mode plan's own invoice (and keeps
    customer-mode links); 0003 moves the check dates to invoice_checks."""
    engine = empty_engine
    upgrade(engine, "0001")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    metadata = MetaData()
    metadata.reflect(engine)
    tables = metadata.tables
    with engine.begin() as conn:
        conn.execute(
            insert(tables["customers"]),
            [
                {
                    "id": "C1",
                    "name": "Acme",
                    "is_company": True,
                    "status": "active",
                    "excluded": False,
                    "attributes": {},
                    "updated_at": now,
                },
            ],
        )
        conn.execute(
            insert(tables["invoices"]),
            [
                {
                    "id": f"I{n}",
                    "customer_id": "C1",
                    "number": f"N{n}",
                    "type": "commercial",
                    "issue_date": date(2026, 1, 1),
                    "due_date": date(2026, 2, 1),
                    "currency": "EUR",
                    "amount": 1_000_000,
                    "amount_due": 1_000_000,
                    "status": "open",
                    "disputed": False,
                    "updated_at": now,
                    "next_check_on": date(2026, 3, n) if n < 3 else None,
                }
                for n in (1, 2, 3)
            ],
        )
        conn.execute(
            insert(tables["policies"]),
            [
                {
                    "id": 1,
                    "name": "P",
                    "description": "",
                    "active": True,
                    "is_default": True,
                    "priority": 1,
                    "min_balance": {},
                    "attach_invoice": False,
                    "transition": "days_overdue",
                }
            ],
        )
        plan = {
            "currency": "EUR",
            "policy_id": 1,
            "status": "active",
            "balance": 1,
            "opened_on": date(2026, 2, 6),
            "anchor_date": date(2026, 2, 1),
            "paused_days": 0,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(
            insert(tables["plans"]),
            [
                {**plan, "id": 1, "customer_id": "C1", "invoice_id": "I1", "mode": "invoice"},
                {**plan, "id": 2, "customer_id": "C1", "invoice_id": None, "mode": "customer"},
            ],
        )
        conn.execute(
            insert(tables["plan_invoices"]),
            [
                {"plan_id": 1, "invoice_id": "I1", "joined_on": date(2026, 2, 6)},
                {"plan_id": 2, "invoice_id": "I2", "joined_on": date(2026, 2, 6)},
                {"plan_id": 2, "invoice_id": "I3", "joined_on": date(2026, 2, 7)},
            ],
        )
    upgrade(engine)
    with engine.connect() as conn:
        links = conn.execute(
            text("SELECT plan_id, invoice_id FROM plan_invoices ORDER BY invoice_id")
        ).all()
        checks = conn.execute(
            text("SELECT invoice_id, check_on FROM invoice_checks ORDER BY invoice_id")
        ).all()
    assert [tuple(r) for r in links] == [(2, "I2"), (2, "I3")]
    assert [(r[0], str(r[1])) for r in checks] == [("I1", "2026-03-01"), ("I2", "2026-03-02")]
    with Session(engine) as session:  # every reader sees plan 1 covering I1 again
        links_q = plan_links()
        covered = session.execute(
            select(links_q.c.plan_id, links_q.c.invoice_id).order_by(links_q.c.invoice_id)
        ).all()
    assert [tuple(r) for r in covered] == [(1, "I1"), (2, "I2"), (2, "I3")]


def test_0007_creates_the_settings_row_and_keeps_one_that_exists(empty_engine: Engine) -> None:
    engine = empty_engine
    upgrade(engine, "0006_execution")
    metadata = MetaData()
    metadata.reflect(engine)
    settings = metadata.tables["settings"]
    with engine.begin() as conn:  # a first read of the old code created the row
        conn.execute(
            insert(settings),
            [
                {
                    "id": 1,
                    "mode": "customer",
                    "invoice_types": ["commercial", "service"],
                    "max_levels": 7,
                    "timezone": "Europe/Paris",
                    "catch_up": "all",
                    "company": {"name": "Acme"},
                    "updated_at": datetime(2026, 3, 1, tzinfo=UTC),
                }
            ],
        )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(settings.c.id, settings.c.mode, settings.c.max_levels)).all()
    assert [tuple(r) for r in rows] == [(1, "customer", 7)]
