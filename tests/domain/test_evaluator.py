"""Table-driven tests of the pure evaluator: one row per rule case, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from recoup.domain.enums import ActionMode, ActionType, CatchUp, InvoiceStatus, Mode, PlanStatus
from recoup.domain.enums import Transition as T
from recoup.domain.evaluator import (
    ClosePlan,
    CustomerFacts,
    InvoiceFacts,
    JoinInvoices,
    OpenPlan,
    PlanState,
    QueueReminder,
    ReachLevel,
    ResumePlan,
    SkipLevel,
    SkipReminder,
    Unit,
    UpdatePlan,
    evaluate,
)
from recoup.domain.policy import Action, Condition, Level, Policy, RuleSet, Settings
from recoup.domain.rules import resolve_policy

DUE = date(2026, 3, 1)
D = Decimal

ACTIONS = {
    "mail": Action("mail", ActionType.send_email, params={"template": "t"}),
    "fee": Action("fee", ActionType.late_fee_fixed, params={"amounts": {"EUR": "15"}}),
    "call": Action("call", ActionType.manual, ActionMode.manual, role="collector"),
    "letter": Action("letter", ActionType.send_letter, params={"template": "l"}),
}

POLICY = Policy(
    name="Standard",
    priority=10,
    default=True,
    min_balance={"EUR": D("50")},
    levels=(
        Level("before", -3, ("mail",), reminder=True),
        Level("first", 5, ("mail", "fee")),
        Level("second", 10, ("mail",)),
        Level("call", 15, ("call",)),
        Level("final", 20, ("letter",), end=True),
    ),
)


def invoice(**kw: object) -> InvoiceFacts:
    values: dict[str, object] = {
        "id": "I1",
        "due_date": DUE,
        "currency": "EUR",
        "amount_due": D("100"),
    }
    values.update(kw)
    return InvoiceFacts(**values)  # type: ignore[arg-type]


def unit(
    today: date,
    *,
    invoices: tuple[InvoiceFacts, ...] | None = None,
    plan: PlanState | None = None,
    policy: Policy | None = POLICY,
    settings: Settings | None = None,
    customer: CustomerFacts | None = None,
    reminders_done: frozenset[tuple[str, str]] = frozenset(),
    currency: str = "EUR",
) -> Unit:
    return Unit(
        today=today,
        settings=settings or Settings(),
        customer=customer or CustomerFacts("C1"),
        currency=currency,
        invoices=invoices if invoices is not None else (invoice(),),
        policy=policy,
        policy_reason="test",
        plan=plan,
        reminders_done=reminders_done,
        actions=ACTIONS,
    )


def day(n: int) -> date:
    return DUE + timedelta(days=n)


def kinds(decisions: tuple[object, ...]) -> list[str]:
    out = []
    for d in decisions:
        name = type(d).__name__
        level = getattr(d, "level", None)
        if level is not None:
            name += f":{level.code}"
        status = getattr(d, "status", None)
        if status is not None:
            name += f":{status.value}"
        out.append(name)
    return out


def plan_at(level: str | None, **kw: object) -> PlanState:
    values: dict[str, object] = {
        "status": PlanStatus.active,
        "level": level,
        "anchor_date": DUE,
        "balance": D("100"),
    }
    values.update(kw)
    return PlanState(**values)  # type: ignore[arg-type]


# R9 reminders, R4 opening, R5 the day each level fires, R1 days overdue
@pytest.mark.parametrize(
    ("offset", "plan", "done", "expected", "next_check"),
    [
        (-5, None, frozenset(), [], day(-3)),  # too early: check again on the reminder day
        (-3, None, frozenset(), ["QueueReminder:before"], day(0)),
        (-1, None, frozenset({("I1", "before")}), [], day(5)),
        (0, None, frozenset(), ["SkipReminder:before"], day(5)),  # due date came first
        (4, None, frozenset({("I1", "before")}), [], day(5)),
        (5, None, frozenset({("I1", "before")}), ["OpenPlan", "ReachLevel:first"], None),
    ],
)
def test_reminders_and_opening(offset, plan, done, expected, next_check):
    outcome = evaluate(unit(day(offset), plan=plan, reminders_done=done))
    assert kinds(outcome.decisions) == expected
    assert outcome.invoice_next_check["I1"] == next_check


@pytest.mark.parametrize(
    ("offset", "level", "expected", "plan_next"),
    [
        (9, "first", [], day(10)),
        (10, "first", ["ReachLevel:second"], day(15)),
        (14, "second", [], day(15)),
        (15, "second", ["ReachLevel:call"], None),  # a manual level waits for its task (R6)
    ],
)
def test_each_level_fires_on_its_day(offset, level, expected, plan_next):
    outcome = evaluate(unit(day(offset), plan=plan_at(level)))
    assert kinds(outcome.decisions) == expected
    assert outcome.plan_next_step == plan_next
    assert outcome.days_overdue == offset


def test_min_balance_blocks_opening_per_currency():
    done = frozenset({("I1", "before")})
    small = evaluate(unit(day(6), invoices=(invoice(amount_due=D("49.99")),), reminders_done=done))
    assert kinds(small.decisions) == []
    assert any("below the policy's minimum balance 50" in r for r in small.reasons)
    # no minimum set for USD: any amount opens
    usd = evaluate(
        unit(
            day(6),
            invoices=(invoice(currency="USD", amount_due=D("1")),),
            currency="USD",
            reminders_done=done,
        )
    )
    assert kinds(usd.decisions) == ["OpenPlan", "ReachLevel:first"]


def test_transition_days_overdue_and_balance_skips_level_below_its_minimum():
    policy = replace(
        POLICY,
        transition=T.days_overdue_and_balance,
        levels=(
            Level("first", 5, ("mail",)),
            Level("big", 10, ("fee",), min_balance={"EUR": D("500")}),
            Level("third", 15, ("mail",)),
            Level("final", 20, ("letter",), end=True),
        ),
    )
    outcome = evaluate(unit(day(10), plan=plan_at("first"), policy=policy))
    assert kinds(outcome.decisions) == ["SkipLevel:big"]
    assert "below the level's minimum" in outcome.decisions[0].reason
    big = evaluate(
        unit(
            day(10),
            plan=plan_at("first", balance=D("600")),
            policy=policy,
            invoices=(invoice(amount_due=D("600")),),
        )
    )
    assert kinds(big.decisions) == ["ReachLevel:big"]
    # with days_overdue only, the balance does not matter
    plain = evaluate(
        unit(day(10), plan=plan_at("first"), policy=replace(policy, transition=T.days_overdue))
    )
    assert kinds(plain.decisions) == ["ReachLevel:big"]


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        (CatchUp.latest, ["SkipLevel:first", "ReachLevel:second"]),
        (CatchUp.all, ["ReachLevel:first", "ReachLevel:second"]),
    ],
)
def test_catch_up_after_a_gap(catch_up, expected):
    outcome = evaluate(
        unit(
            day(12),
            plan=None,
            settings=Settings(catch_up=catch_up),
            reminders_done=frozenset({("I1", "before")}),
        )
    )
    assert kinds(outcome.decisions) == ["OpenPlan", *expected]


def test_catch_up_all_stops_at_a_manual_level():
    outcome = evaluate(
        unit(day(19), plan=plan_at("first"), settings=Settings(catch_up=CatchUp.all))
    )
    assert kinds(outcome.decisions) == ["ReachLevel:second", "ReachLevel:call"]
    assert outcome.plan_next_step is None


def test_catch_up_latest_skips_a_manual_level_passed_over():
    outcome = evaluate(unit(day(21), plan=plan_at("second")))
    assert kinds(outcome.decisions) == ["SkipLevel:call", "ReachLevel:final"]


def test_open_task_holds_the_plan_at_its_level():
    outcome = evaluate(unit(day(40), plan=plan_at("call", open_tasks=1)))
    assert kinds(outcome.decisions) == []
    assert outcome.plan_next_step is None
    assert any("waiting for 1 manual task" in r for r in outcome.reasons)


def test_end_level_waits_for_its_actions_then_closes_unrecovered():
    waiting = evaluate(unit(day(21), plan=plan_at("final", unfinished_actions=1)))
    assert kinds(waiting.decisions) == []
    assert waiting.plan_next_step is None  # the executor closes it when they finish
    done = evaluate(unit(day(22), plan=plan_at("final")))
    assert kinds(done.decisions) == ["ClosePlan:unrecovered"]


def test_end_level_without_actions_closes_at_once():
    policy = replace(POLICY, levels=(Level("first", 5, ("mail",)), Level("end", 30, (), end=True)))
    outcome = evaluate(unit(day(30), plan=plan_at("first"), policy=policy))
    assert kinds(outcome.decisions) == ["ReachLevel:end", "ClosePlan:unrecovered"]


@pytest.mark.parametrize(
    ("invoice_kw", "customer", "reason"),
    [
        ({"status": InvoiceStatus.paid, "amount_due": D(0)}, None, "invoice is paid"),
        ({"disputed": True}, None, "disputed"),
        ({"type": "credit_note"}, None, "not in the dunned types"),
        ({}, CustomerFacts("C1", excluded=True), "excluded"),
        ({}, CustomerFacts("C1", status="cancelled"), "cancelled"),
    ],
)
def test_ineligible_invoices_do_nothing_and_say_why(invoice_kw, customer, reason):
    outcome = evaluate(unit(day(30), invoices=(invoice(**invoice_kw),), customer=customer))
    assert outcome.decisions == ()
    assert any(reason in r for r in outcome.reasons)


def test_policy_currency_criterion():
    outcome = evaluate(unit(day(30), policy=replace(POLICY, currency="USD")))
    assert outcome.decisions == ()
    assert any("is for USD" in r for r in outcome.reasons)


def test_no_policy_explains_itself():
    outcome = evaluate(unit(day(30), policy=None))
    assert outcome.decisions == ()
    assert any("no policy applies" in r for r in outcome.reasons)


def test_pause_shifts_the_schedule_and_resumes_on_until_date():
    paused = plan_at(
        "first",
        status=PlanStatus.paused,
        paused_on=day(6),
        pause_until=day(11),
        pause_reason="promise to pay",
    )
    during = evaluate(unit(day(10), plan=paused))
    assert kinds(during.decisions) == []
    assert during.plan_next_step == day(11)
    after = evaluate(unit(day(11), plan=paused))
    # 5 paused days: day 11 counts as 6 days overdue, so `second` (10) comes on day 15
    assert kinds(after.decisions) == ["ResumePlan"]
    assert after.days_overdue == 6
    assert after.plan_next_step == day(15)
    assert isinstance(after.decisions[0], ResumePlan) and after.decisions[0].paused_days == 5


def test_levels_never_go_down():
    outcome = evaluate(unit(day(3), plan=plan_at("second")))
    assert outcome.decisions == ()


def test_final_plan_does_nothing():
    outcome = evaluate(unit(day(30), plan=plan_at("final", status=PlanStatus.stopped)))
    assert outcome.decisions == ()


# customer mode (R4): one plan per customer and currency, anchored on the oldest overdue
CUSTOMER = Settings(mode=Mode.customer)


def test_customer_mode_opens_on_oldest_and_sums_balance():
    invoices = (
        invoice(id="A", due_date=day(0), amount_due=D("30")),
        invoice(id="B", due_date=day(3), amount_due=D("40")),
        invoice(id="C", due_date=day(20), amount_due=D("500")),  # not yet due: not in balance
    )
    outcome = evaluate(
        unit(
            day(5),
            invoices=invoices,
            settings=CUSTOMER,
            reminders_done=frozenset({("A", "before"), ("B", "before"), ("C", "before")}),
        )
    )
    assert kinds(outcome.decisions) == ["OpenPlan", "ReachLevel:first"]
    opened = outcome.decisions[0]
    assert isinstance(opened, OpenPlan)
    assert opened.balance == D("70") and opened.anchor_date == day(0)
    assert opened.invoice_ids == ("A", "B")

    assert outcome.invoice_next_check["C"] == day(20)  # C joins when it falls due


def test_customer_mode_invoice_joins_and_anchor_moves_when_oldest_is_paid():
    plan = plan_at("first", anchor_date=day(0), balance=D("70"), joined=frozenset({"A", "B"}))
    invoices = (
        invoice(id="A", due_date=day(0), amount_due=D(0), status=InvoiceStatus.paid),
        invoice(id="B", due_date=day(3), amount_due=D("40")),
        invoice(id="C", due_date=day(8), amount_due=D("60")),
    )
    outcome = evaluate(
        unit(
            day(9),
            invoices=invoices,
            plan=plan,
            settings=CUSTOMER,
            reminders_done=frozenset({("C", "before")}),
        )
    )
    assert kinds(outcome.decisions) == ["JoinInvoices", "UpdatePlan"]
    join, upd = outcome.decisions
    assert isinstance(join, JoinInvoices) and join.invoice_ids == ("C",)
    assert isinstance(upd, UpdatePlan) and upd.anchor_date == day(3) and upd.balance == D("100")
    assert outcome.days_overdue == 6
    assert outcome.plan_next_step == day(13)  # second level: anchor day(3) + 10


def test_customer_mode_below_minimum_does_not_open():
    invoices = (invoice(id="A", amount_due=D("20")), invoice(id="B", amount_due=D("20")))
    outcome = evaluate(
        unit(
            day(10),
            invoices=invoices,
            settings=CUSTOMER,
            reminders_done=frozenset({("A", "before"), ("B", "before")}),
        )
    )
    assert outcome.decisions == ()


def test_customer_mode_reminders_are_per_invoice():
    invoices = (invoice(id="A", due_date=day(3)), invoice(id="B", due_date=day(10)))
    outcome = evaluate(unit(day(0), invoices=invoices, settings=CUSTOMER))
    assert [(type(d).__name__, d.invoice_id) for d in outcome.decisions] == [("QueueReminder", "A")]


def test_reminder_decision_types():
    outcome = evaluate(unit(day(0)))
    assert isinstance(outcome.decisions[0], SkipReminder)
    outcome = evaluate(unit(day(-2)))
    assert isinstance(outcome.decisions[0], QueueReminder)


def test_reach_level_carries_days_overdue():
    outcome = evaluate(unit(day(10), plan=plan_at("first")))
    reach = outcome.decisions[0]
    assert isinstance(reach, ReachLevel) and reach.days_overdue == 10


def test_zero_balance_plan_closes_recovered():
    outcome = evaluate(
        unit(
            day(10),
            plan=plan_at("first", balance=D(0)),
            invoices=(invoice(amount_due=D("0.00"), status=InvoiceStatus.open),),
        )
    )
    # an open invoice with nothing due is ineligible: the run leaves it to R8 and sends nothing
    assert not any(isinstance(d, ReachLevel | SkipLevel) for d in outcome.decisions)
    assert not any(
        isinstance(d, ClosePlan) and d.status is PlanStatus.unrecovered for d in outcome.decisions
    )


# R3: which policy
STANDARD = Policy("Standard", 30, (Level("end", 10, end=True),), default=True)
SMB = Policy(
    "SMB",
    20,
    (Level("end", 10, end=True),),
    rules=RuleSet("all", (Condition("category", "=", "smb"),)),
)
BIG = Policy(
    "Big",
    10,
    (Level("end", 10, end=True),),
    rules=RuleSet(
        "any", (Condition("attributes.seats", ">=", 100), Condition("country", "in", ["DE", "AT"]))
    ),
)
OFF = Policy(
    "Off",
    5,
    (Level("end", 10, end=True),),
    active=False,
    rules=RuleSet("all", (Condition("category", "=", "smb"),)),
)


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        ({"policy": "Standard", "category": "smb"}, "Standard"),  # explicit wins
        ({"category": "smb"}, "SMB"),  # inactive "Off" is ignored
        ({"category": "smb", "attributes": {"seats": "150"}}, "Big"),  # lower priority first
        ({"country": "AT"}, "Big"),
        ({"category": "enterprise"}, "Standard"),  # default
        ({"policy": "Nope"}, None),
    ],
)
def test_policy_resolution_order(customer, expected):
    resolution = resolve_policy(customer, [STANDARD, SMB, BIG, OFF])
    assert (resolution.policy.name if resolution.policy else None) == expected
    assert resolution.reason


def test_no_default_and_no_match_means_no_policy():
    resolution = resolve_policy({"category": "x"}, [SMB])
    assert resolution.policy is None
    assert "no active default policy" in resolution.reason
