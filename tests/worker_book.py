"""A large queue of due action instances, written with bulk Core inserts: for the worker tests
and benchmarks/bench_worker.py. One customer per 10 invoices, one invoice-mode plan per
invoice at level `first`, one pending automatic instance per plan, due now."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update

from recoup.core.clock import utc_now
from recoup.domain.defaults import SETTINGS_ID
from recoup.models import (
    ActionInstance,
    ActionRow,
    Customer,
    Invoice,
    LevelRow,
    Plan,
    PolicyRow,
    SettingsRow,
    TemplateRow,
)

DUE = date(2024, 1, 1)
CHUNK = 5000


def _chunks(rows: list[dict[str, Any]]) -> Any:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def seed_queue(
    engine: Engine,
    n: int,
    *,
    action_type: str = "late_fee_fixed",
    prefix: str = "W",
) -> list[int]:
    """`n` pending instances of a `fee` (late_fee_fixed, 15 EUR) or `notice` (send_email)
    action; returns their ids."""
    now = utc_now()
    with engine.begin() as conn:
        # the migrations created the settings row; the messages name a company
        conn.execute(
            update(SettingsRow)
            .where(SettingsRow.id == SETTINGS_ID)
            .values(company={"name": "Recoup Test", "email": "billing@recoup.test"}, updated_at=now)
        )
        if action_type == "send_email":
            code, params = "notice", {"template": "notice"}
            conn.execute(
                insert(TemplateRow),
                [
                    {
                        "code": "notice",
                        "channel": "email",
                        "language": "en",
                        "subject": "Invoice {{ invoice.number }} is overdue",
                        "body": "Dear {{ customer.name }},\n\nPlease pay {{ balance|money }}.\n",
                        "active": True,
                        "position": 0,
                    }
                ],
            )
        else:
            code, params = "fee", {"amounts": {"EUR": "15.00"}, "service": "LATE_FEE"}
        conn.execute(
            insert(ActionRow),
            [{"code": code, "type": action_type, "mode": "automatic", "params": params}],
        )
        policy_id = conn.execute(
            insert(PolicyRow).returning(PolicyRow.id),
            [
                {
                    "name": "Standard",
                    "description": "",
                    "active": True,
                    "is_default": True,
                    "priority": 10,
                    "min_balance": {},
                    "attach_invoice": False,
                    "transition": "days_overdue",
                }
            ],
        ).scalar_one()
        conn.execute(
            insert(LevelRow),
            [
                {
                    "policy_id": policy_id,
                    "code": "first",
                    "days": 5,
                    "reminder": False,
                    "end": False,
                    "min_balance": {},
                    "actions": [code],
                    "position": 0,
                },
                {
                    "policy_id": policy_id,
                    "code": "final",
                    "days": 20,
                    "reminder": False,
                    "end": True,
                    "min_balance": {},
                    "actions": [],
                    "position": 1,
                },
            ],
        )
        customers = [
            {
                "id": f"{prefix}C{i}",
                "name": f"Customer {i}",
                "email": f"c{i}@example.test",
                "language": "en",
                "currency": "EUR",
                "is_company": True,
                "status": "active",
                "excluded": False,
                "attributes": {},
                "updated_at": now,
            }
            for i in range((n + 9) // 10)
        ]
        invoices = [
            {
                "id": f"{prefix}I{i}",
                "customer_id": f"{prefix}C{i // 10}",
                "number": f"INV-{i}",
                "type": "commercial",
                "issue_date": DUE - timedelta(days=30),
                "due_date": DUE,
                "currency": "EUR",
                "amount": Decimal("100.00"),
                "amount_due": Decimal("100.00"),
                "status": "open",
                "disputed": False,
                "updated_at": now,
            }
            for i in range(n)
        ]
        for rows in _chunks(customers):
            conn.execute(insert(Customer), rows)
        for rows in _chunks(invoices):
            conn.execute(insert(Invoice), rows)
        plans = [
            {
                "customer_id": f"{prefix}C{i // 10}",
                "invoice_id": f"{prefix}I{i}",
                "currency": "EUR",
                "mode": "invoice",
                "policy_id": policy_id,
                "status": "active",
                "level": "first",
                "balance": Decimal("100.00"),
                "opened_on": DUE + timedelta(days=5),
                "anchor_date": DUE,
                "paused_days": 0,
                "next_step_on": DUE + timedelta(days=20),
                "open_key": f"inv:{prefix}I{i}",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ]
        for rows in _chunks(plans):
            conn.execute(insert(Plan), rows)
        plan_ids = dict(
            conn.execute(
                select(Plan.invoice_id, Plan.id).where(Plan.invoice_id.like(f"{prefix}I%"))
            ).all()
        )
        instances = [
            {
                "key": f"plan:{plan_ids[f'{prefix}I{i}']}:first:{code}",
                "plan_id": plan_ids[f"{prefix}I{i}"],
                "invoice_id": f"{prefix}I{i}",
                "customer_id": f"{prefix}C{i // 10}",
                "policy_id": policy_id,
                "level": "first",
                "action": code,
                "type": action_type,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "due_on": DUE + timedelta(days=5),
                "created_at": now,
            }
            for i in range(n)
        ]
        for rows in _chunks(instances):
            conn.execute(insert(ActionInstance), rows)
        return list(
            conn.execute(
                select(ActionInstance.id).where(ActionInstance.invoice_id.like(f"{prefix}I%"))
            ).scalars()
        )


__all__ = ["seed_queue"]
