"""The read side every face shares: repositories (filters, cursor pages, named queries) and
read schemas (SPEC §5 field names, the JSON the CLI prints), on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker

from recoup.charges import repository as charge_repository
from recoup.charges.schemas import ChargeRead
from recoup.core.db import unit_of_work
from recoup.core.errors import Conflict, InvalidInput, NotFound, cli_flag
from recoup.core.schemas import encode_cursor
from recoup.log import repository as log_repository
from recoup.log.repository import LogFilter
from recoup.log.schemas import LogEntryRead
from recoup.log.service import log
from recoup.models import Charge, Document, Task, WebhookDelivery
from recoup.plans import repository as plan_repository
from recoup.plans.promise import check_amount, parse_promised_amount
from recoup.plans.schemas import PlanDetail, PlanRead
from recoup.plans.service import pause_plan
from recoup.tasks import repository as task_repository
from recoup.webhooks import repository as delivery_repository
from recoup.webhooks.schemas import DeliveryRead
from tests.factories import (
    make_action_instance,
    make_customer,
    make_customer_plan,
    make_invoice,
    make_plan,
)

AT = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)


def _plans(session: Session, count: int) -> list[int]:
    customer = make_customer(session)
    ids = []
    for number in range(count):
        invoice = make_invoice(session, customer, amount="100.005" if number == 0 else "80.00")
        status = "recovered" if number == 1 else "active"
        ids.append(make_plan(session, invoice, status=status).id)
    return ids


def test_plan_pages_newest_first_and_named_queries(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        ids = _plans(session, 5)
        seen, cursor, pages = [], None, 0
        while True:
            rows, cursor = plan_repository.page(session, cursor=cursor, limit=2)
            seen += [p.id for p in rows]
            pages += 1
            if cursor is None:
                break
        assert seen == sorted(ids, reverse=True) and pages == 3
        assert [p.id for p in plan_repository.list_plans(session, limit=2)] == seen[:2]
        active, _ = plan_repository.page(session, status="active", limit=10)
        assert ids[1] not in {p.id for p in active}
        invoices = [plan_repository.get_or_not_found(session, i).invoice_id for i in ids]
        found = plan_repository.open_for_invoices(session, [i for i in invoices if i])
        assert sorted(p.id for p in found) == sorted(ids[:1] + ids[2:])  # not the recovered one
        with pytest.raises(NotFound, match="plan 999999 not found"):
            plan_repository.get_or_not_found(session, 999999)
        with pytest.raises(InvalidInput) as bad:
            plan_repository.page(session, cursor="not a cursor")
        assert bad.value.field == "cursor"
        with pytest.raises(InvalidInput):
            plan_repository.page(session, cursor=encode_cursor(["x", 1]))
        with pytest.raises(InvalidInput) as wide:
            plan_repository.page(session, limit=0)
        assert wide.value.field == "limit"


def test_the_invoices_of_many_plans_in_the_order_they_joined(
    session_factory: sessionmaker[Session],
) -> None:
    with unit_of_work(session_factory) as session:
        customer = make_customer(session)
        own = make_plan(session, make_invoice(session, customer, id="I-own")).id
        later, first = (make_invoice(session, customer, id=i) for i in ("I-b", "I-a"))
        shared = make_customer_plan(session, customer, [later, first]).id
        found = plan_repository.invoice_ids_by_plan(session, [shared, own, shared, 999999])
        # one list per plan that covers any, each as `invoice_ids` gives it for that plan
        assert found == {own: ["I-own"], shared: ["I-a", "I-b"]}
        assert found[shared] == plan_repository.invoice_ids(session, shared)
        assert plan_repository.invoice_ids_by_plan(session, []) == {}


def test_plan_read_and_detail_print_the_cli_json(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        plan_id = _plans(session, 1)[0]
        plan = plan_repository.get_or_not_found(session, plan_id)
        make_action_instance(session, plan)
        log(session, "plan_opened", plan_id=plan_id, on=date(2026, 3, 2), reason="x")
        read = PlanRead.model_validate(plan).model_dump(mode="json")
        assert list(read) == [
            "id",
            "customer_id",
            "invoice_id",
            "currency",
            "status",
            "level",
            "balance",
            "opened_on",
            "closed_on",
        ]
        assert read["balance"] == "100.01" and read["status"] == "active"  # rounded half up
        detail = PlanDetail.of(plan_repository.get_parts(session, plan_id)).model_dump(mode="json")
        assert list(detail)[: len(read)] == list(read)
        assert list(detail)[len(read) :] == [
            "policy",
            "anchor_date",
            "paused_days",
            "pause_reason",
            "pause_until",
            "promise_amount",
            "promise_made_on",
            "stop_reason",
            "next_step_on",
            "invoices",
            "actions",
            "tasks",
            "charges",
            "documents",
            "log",
        ]
        assert detail["invoices"] == [plan.invoice_id]
        assert detail["actions"][0]["status"] == "pending"
        assert detail["log"][0]["details"] == {"reason": "x"}


def test_log_filters_pages_and_timestamps(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        for day in range(1, 6):
            entry = log(session, "payment_recorded", on=date(2026, 3, day), customer_id="C1")
            entry.at = AT + timedelta(days=day)
        log(session, "plan_opened", on=date(2026, 3, 3), customer_id="C2")
        session.flush()
        recent = log_repository.recent(session, LogFilter(customer_id="C1"), limit=2)
        assert [e.on.day for e in recent if e.on] == [4, 5]  # the newest, oldest first
        window = LogFilter(event="payment_recorded", since=date(2026, 3, 2), until=date(2026, 3, 4))
        first, cursor = log_repository.page(session, window, limit=2)
        second, last = log_repository.page(session, window, cursor=cursor, limit=2)
        assert [e.on.day for e in first + second if e.on] == [2, 3, 4] and last is None
        shown = LogEntryRead.model_validate(first[0]).model_dump(mode="json")
        assert shown["at"] == (AT + timedelta(days=2)).isoformat()  # "+00:00", not "Z"
        assert shown["on"] == "2026-03-02" and shown["actor"] == "system"


def test_task_pages_follow_the_work_list_order(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        plan_id = _plans(session, 1)[0]
        for number in range(5):  # created out of order: the work list goes by creation date
            session.add(
                Task(
                    plan_id=plan_id,
                    role="collector",
                    status="claimed" if number == 4 else "open",
                    created_on=date(2026, 3, 10 - number),
                    created_at=AT,
                )
            )
        session.add(
            Task(plan_id=plan_id, role="collector", status="completed", created_on=date(2026, 3, 1))
        )
        session.flush()
        whole = task_repository.work_list(session, today=date(2026, 3, 20))
        seen, cursor = [], None
        while True:
            items, cursor = task_repository.page(
                session, cursor=cursor, limit=2, today=date(2026, 3, 20)
            )
            seen += [item.task.id for item in items]
            if cursor is None:
                break
        assert seen == [item.task.id for item in whole] and len(seen) == 5
        assert task_repository.has_open(session, plan_id)
        assert len(task_repository.open_of_plan(session, plan_id)) == 5
        with pytest.raises(NotFound, match="task 999999 not found"):
            task_repository.get_or_not_found(session, 999999)


def test_charges_and_deliveries(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        plan_id = _plans(session, 1)[0]
        plan = plan_repository.get_or_not_found(session, plan_id)
        for number in range(3):
            instance = make_action_instance(session, plan, action=f"fee_{number}")
            session.add(
                Charge(
                    action_instance_id=instance.id,
                    customer_id=plan.customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    amount=Decimal("15.005"),
                    currency="EUR",
                    service="LATE_FEE",
                    kind="late_fee_fixed",
                    created_on=date(2026, 3, 2),
                    status="waived" if number == 2 else "open",
                )
            )
        session.flush()
        first, cursor = charge_repository.page(session, limit=2)
        rest, end = charge_repository.page(session, cursor=cursor, limit=2)
        assert len(first) == 2 and len(rest) == 1 and end is None
        assert [c.id for c in charge_repository.list_charges(session, status="open")] == [
            c.id for c in first
        ]
        assert ChargeRead.model_validate(first[0]).model_dump(mode="json")["amount"] == "15.01"
        with pytest.raises(InvalidInput) as bad:
            charge_repository.list_charges(session, status="nope")
        assert bad.value.field == "status"
        entry = log(session, "plan_opened", plan_id=plan.id)
        session.flush()
        session.add(
            WebhookDelivery(
                url="https://user:secret@hooks.example/in",
                event="plan_opened",
                log_entry_id=entry.id,
                payload={"id": f"evt_{entry.id}"},
                created_at=AT,
            )
        )
        session.flush()
        rows, _ = delivery_repository.page(session, status="pending", limit=10)
        shown = DeliveryRead.model_validate(rows[0]).model_dump(mode="json")
        assert "secret" not in shown["url"] and shown["event_id"] == f"evt_{entry.id}"
        assert shown["created_at"] == AT.isoformat() and shown["status"] == "pending"
        with pytest.raises(InvalidInput):
            delivery_repository.list_deliveries(session, status="nope")


def test_errors_name_their_field_not_a_flag(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        plan = plan_repository.get_or_not_found(session, _plans(session, 1)[0])
        day = date(2026, 3, 2)
        with pytest.raises(InvalidInput) as past:
            pause_plan(session, plan, reason="call", until=day, on=day)
        assert past.value.field == "until" and str(past.value) == f"until {day} must be after {day}"
        assert past.value.text(cli_flag) == f"--until {day} must be after {day}"
        with pytest.raises(InvalidInput) as empty:
            pause_plan(session, plan, reason=" ", until=None, on=day)
        assert empty.value.text(cli_flag) == "--reason must not be empty"
        pause_plan(session, plan, reason="call", until=None, on=day)
        with pytest.raises(Conflict) as twice:
            pause_plan(session, plan, reason="call", until=None, on=day)
        assert twice.value.status_code == 409
    with pytest.raises(InvalidInput) as amount:
        parse_promised_amount("1e3")
    assert amount.value.field == "amount" and amount.value.text(cli_flag).startswith("--amount:")
    with pytest.raises(InvalidInput, match="EUR amounts have 2 decimal"):
        check_amount(Decimal("1.001"), "EUR")


def test_a_plan_read_in_one_statement_has_the_parts_read_one_list_at_a_time(
    session_factory: sessionmaker[Session], db_url: str
) -> None:
    """PostgreSQL reads a plan's parts as JSON in one statement (`_parts_in_one`): every value
    comes back as the column's own type gives it (amounts, dates, aware timestamps, JSON)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the one-statement read is PostgreSQL's (json_agg)")
    at = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
    with unit_of_work(session_factory) as session:
        plan_id = _plans(session, 1)[0]
        plan = plan_repository.get_or_not_found(session, plan_id)
        instance = make_action_instance(session, plan)
        customer = make_customer(session, id="C-shared")
        shared = make_customer_plan(
            session, customer, [make_invoice(session, customer, id=i) for i in ("I-y", "I-x")]
        ).id
        log(session, "plan_opened", plan_id=plan_id, on=date(2026, 3, 2), reason="x")
        session.add_all(
            [
                Task(plan_id=plan_id, role="collector", created_on=date(2026, 3, 2),
                     created_at=at, instructions="call", claimed_at=at + timedelta(hours=1)),
                Charge(action_instance_id=instance.id, customer_id=plan.customer_id,
                       plan_id=plan_id, amount=Decimal("15.0625"), currency="EUR",
                       service="late_fee", kind="late_fee", created_on=date(2026, 3, 2),
                       created_at=at),
                Document(plan_id=plan_id, path="letters/a.pdf", invoice_ids=["I-1"],
                         created_at=at),
            ]
        )  # fmt: skip
        session.flush()
        for pid in (plan_id, shared):
            one = plan_repository._parts_in_one(session, pid)
            each = plan_repository._parts_one_per_list(session, pid)
            # the plan's columns and policy name first, then the lists as JSON
            assert tuple(one.plan)[: len(each.plan)] == tuple(each.plan)
            assert (one.policy, one.invoice_ids) == (each.policy, each.invoice_ids)
            for name in ("actions", "tasks", "charges", "documents", "log"):
                assert [tuple(row) for row in getattr(one, name)] == [
                    tuple(row) for row in getattr(each, name)
                ], name
        parts = plan_repository._parts_in_one(session, plan_id)
        assert parts.charges[0].amount == Decimal("15.0625")
        assert parts.tasks[0].claimed_at == at + timedelta(hours=1)
        assert parts.documents[0].invoice_ids == ["I-1"]
        assert plan_repository._parts_in_one(session, shared).invoice_ids == ["I-x", "I-y"]
        with pytest.raises(NotFound):
            plan_repository._parts_in_one(session, 999999)


def test_a_page_of_plans_validated_from_its_rows_is_the_rows_one_by_one(
    session_factory: sessionmaker[Session],
) -> None:
    """`Schema.from_rows` (the plans page's way, as dicts) gives what `model_validate(row)`
    gives for each row: the rounded balance, the status as the enum."""
    with unit_of_work(session_factory) as session:
        _plans(session, 3)
        rows, _ = plan_repository.page(session, limit=10)
        assert len(rows) == 3
        assert PlanRead.from_rows(rows) == [PlanRead.model_validate(row) for row in rows]
        assert PlanRead.from_rows(rows)[-1].balance == Decimal("100.01")  # the oldest, half up
        assert PlanRead.from_rows([]) == []
