"""Issue 9.6 and 9.11: every effect belongs to a business date, not to the wall clock.

An action executed later (by `recoup worker`, after `run --no-execute`) uses the date it was
queued for (R13); people's actions take `--on DATE`; a plan never closes or pauses before it
opened."""

from __future__ import annotations

import email
import email.policy
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from recoup.core.clock import today_in
from recoup.messages.render import format_day
from tests.engine_book import DUE, Book, day
from tests.runs.test_run_e2e import Cli as E2eCli
from tests.runs.test_run_e2e import invoice_csv


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Book:
    return Book(tmp_path)


def pdf_text(path: Path) -> str:
    text = "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def letters(book: Book, env: dict[str, str], plan_id: int) -> list[str]:
    detail = book.json("plan", "show", str(plan_id))[0]
    paths = [Path(d["path"]) for d in detail["documents"]]
    return [pdf_text(p if p.is_absolute() else Path(env["RECOUP_DATA_DIR"]) / p) for p in paths]


def outbox_bodies(env: dict[str, str]) -> list[str]:
    bodies = []
    for path in sorted((Path(env["RECOUP_DATA_DIR"]) / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        bodies.append(" ".join(part.get_content().replace("\u00a0", " ").split()))
    return bodies


def test_a_worker_executes_actions_on_the_date_they_were_queued_for(
    book: Book, env: dict[str, str]
) -> None:
    """`run --as-of D --no-execute`, then `recoup worker --once`, months later by the wall
    clock: the letter is dated D with D's days overdue, interest counts to D, the log says D."""
    book.start()
    book.run(-3, "--no-execute")  # the reminder, queued
    book("worker", "--once")
    [reminder] = outbox_bodies(env)
    assert f"REMINDER {format_day(DUE - timedelta(days=3), 'medium', locale='en')}:" in reminder
    book.run(5)
    book.run(20, "--no-execute")
    book("worker", "--once")

    plan = book.plan()
    assert plan["status"] == "unrecovered" and plan["closed_on"] == day(20)
    [letter] = letters(book, env, plan["id"])
    d20 = DUE + timedelta(days=20)
    assert f"LETTER {format_day(d20, 'medium', locale='en')}: 20 days overdue" in letter
    assert format_day(d20, "long", locale="en") in letter  # the layout's date line
    # interest to D: 100.00 x 36.5 % x 20 / 365
    [charge] = book.json("charges")
    assert Decimal(charge["amount"]) == Decimal("2.00")
    done = book.log("--event", "action_done")
    assert {e["on"] for e in done if e["level"] == "final"} == {day(20)}
    assert {e["on"] for e in done if e["level"] == "before_due"} == {day(-3)}
    [ended] = book.log("--event", "plan_unrecovered")
    assert ended["on"] == day(20)


def test_disputes_take_their_business_date(book: Book) -> None:
    book.start()
    book.run(5)
    book("invoice", "dispute", "I1", "--on", day(7), "--reason", "wrong amount")
    book("invoice", "undispute", "I1", "--on", day(10))
    paused = book.log("--event", "plan_paused")
    resumed = book.log("--event", "plan_resumed")
    assert [e["on"] for e in paused] == [day(7)]
    assert [(e["on"], e["details"]["paused_days"]) for e in resumed] == [(day(10), 3)]
    assert [e["on"] for e in book.log("--event", "invoice_disputed")] == [day(7)]
    explained = book.json("explain", "I1", "--as-of", day(12))[0]
    assert explained["days_overdue"] == 9  # 12 days past due, 3 of them paused
    out = book("invoice", "dispute", "I1", "--on", "2026-02-30", code=1)
    assert "--on" in out and "not a date" in out


def test_a_plan_never_closes_or_pauses_before_it_opened(book: Book) -> None:
    """Inside a simulation ahead of the wall clock, a dispute recorded without --on is dated
    by the wall clock: before the plan opened. The plan closes (customer mode) or pauses
    (invoice mode) no earlier than its opening, and paused days are never negative."""
    ahead = today_in("UTC") + timedelta(days=40)
    book.start(
        mode="customer",
        invoices=invoice_csv(("I1", "C1", ahead, "100.00", "EUR")),
    )
    book("run", "--as-of", str(ahead + timedelta(days=5)), "--future", "--quiet")
    opened = book.plan()["opened_on"]
    assert opened == str(ahead + timedelta(days=5))
    book("invoice", "dispute", "I1")  # the wall clock: before the plan opened
    plan = book.plan()
    assert plan["status"] == "recovered"
    assert plan["closed_on"] == opened
    [recovered] = book.log("--event", "plan_recovered")
    assert recovered["on"] == opened


def test_a_pause_from_before_the_opening_counts_from_the_opening(book: Book) -> None:
    ahead = today_in("UTC") + timedelta(days=40)
    book.start(invoices=invoice_csv(("I1", "C1", ahead, "100.00", "EUR")))
    opened_on = ahead + timedelta(days=5)
    book("run", "--as-of", str(opened_on), "--future", "--quiet")
    book("invoice", "dispute", "I1")  # wall clock, before the opening
    book("invoice", "undispute", "I1", "--on", str(opened_on + timedelta(days=2)))
    [resumed] = book.log("--event", "plan_resumed")
    assert resumed["details"]["paused_days"] == 2
    book("invoice", "dispute", "I1", "--on", str(opened_on + timedelta(days=3)))
    book("invoice", "undispute", "I1")  # wall clock: before the pause
    plans = book.json("plan", "show", str(book.plan()["id"]))
    assert plans[0]["paused_days"] == 2  # never negative


def test_tasks_and_manual_actions_take_their_business_date(
    env: dict[str, str], tmp_path: Path
) -> None:
    cli = E2eCli(tmp_path)
    cli.setup()  # the e2e policy: a notice at 5 days, a collector's call at 15
    cli.run(5)
    plan_id = str(cli.plans()[0]["id"])
    cli("plan", "email", plan_id, "--on", day(6), "--user", "bob")
    cli.run(15)
    [task] = cli.json("tasks")
    cli("task", "claim", str(task["id"]), "--on", day(16), "--user", "bob")
    cli("task", "complete", str(task["id"]), "--on", day(17), "--user", "bob", "--note", "ok")
    assert [e["on"] for e in cli.log("--event", "task_claimed")] == [day(16)]
    assert [e["on"] for e in cli.log("--event", "task_completed")] == [day(17)]
    manual = [e for e in cli.log("--plan", plan_id) if e["actor"] == "bob"]
    assert {e["on"] for e in manual} == {day(6), day(16), day(17)}
    by_hand = [e for e in manual if e["event"] == "action_done"]
    assert [e["on"] for e in by_hand] == [day(6)]  # email, letter and status share the path


def test_the_worker_reads_the_engines_date_not_the_clock(book: Book) -> None:
    """A reminder queued by a run in the past of the wall clock is still timely for the
    worker: its date is the latest run's, not today's."""
    book.start()
    book.run(-3, "--no-execute")
    book("worker", "--once")
    [sent] = book.log("--event", "reminder_sent")
    assert sent["on"] == day(-3)
    assert date.fromisoformat(day(-3)) < today_in("UTC")
