"""End-to-end: the CLI driven like a user would, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recoup.actions.context import ActionContext
from recoup.actions.outcomes import ActionOutcome, PermanentFailure
from recoup.actions.registry import EXECUTORS, executor_for
from recoup.cli.common import console as cli_console
from recoup.cli.common import print_table
from recoup.cli.main import app

DUE = date(2026, 3, 2)

POLICY_YAML = """
settings:
  mode: {mode}
  invoice_types: [commercial]
  timezone: UTC
  catch_up: {catch_up}
templates:
  - {{code: reminder, channel: email, language: en, subject: "Invoice {{{{ invoice.number }}}} is due soon", body: "Dear {{{{ customer.name }}}}, {{{{ balance|money }}}} is due."}}
  - {{code: notice, channel: email, language: en, subject: "Overdue: {{{{ balance|money }}}}", body: "Please pay {{{{ balance|money }}}}."}}
actions:
  - {{code: email_reminder, type: send_email, template: reminder}}
  - {{code: email_notice, type: send_email, template: notice}}
  - {{code: fee_15, type: late_fee_fixed, amounts: {{EUR: "15.00", USD: "15.00"}}, service: LATE_FEE}}
  - {{code: call, type: manual, role: collector, instructions: "Call the customer"}}
  - {{code: suspend, type: change_account_status, status: suspended}}
policies:
  - name: Standard
    default: true
    priority: 10
    min_balance: {{EUR: "50.00"}}
    transition: {transition}
    levels:
      - {{code: before_due, days: -3, reminder: true, actions: [email_reminder]}}
      - {{code: first_notice, days: 5, actions: [email_notice, fee_15]}}
      - {{code: second_notice, days: 10, actions: [email_notice]{second_min}}}
      - {{code: call, days: 15, actions: [call]}}
      - {{code: final, days: 20, end: true, actions: [suspend]}}
"""

CUSTOMERS = """id,name,email,phone,language,country,currency,category,is_company,payment_method,policy,status,excluded
C1,Acme SARL,billing@acme.test,,en,FR,EUR,smb,true,transfer,,active,false
C2,Bolt Inc,ap@bolt.test,,en,US,USD,smb,true,card,,active,false
"""


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> str:
        result = self.runner.invoke(app, list(args), catch_exceptions=False)
        output = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
        assert result.exit_code == code, f"{args} exited {result.exit_code}:\n{output}"
        return output

    def json(self, *args: str) -> list[dict[str, Any]]:
        result = self.runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.stdout
        return json.loads(result.stdout)

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text).lstrip())
        return str(path)

    def setup(
        self,
        *,
        mode: str = "invoice",
        catch_up: str = "latest",
        transition: str = "days_overdue",
        second_min: str = "",
        invoices: str | None = None,
    ) -> None:
        self("init")
        policy = POLICY_YAML.format(
            mode=mode, catch_up=catch_up, transition=transition, second_min=second_min
        )
        self("config", "apply", self.file("policy.yaml", policy))
        self("import", "customers", self.file("customers.csv", CUSTOMERS))
        if invoices is None:
            invoices = invoice_csv(("I1", "C1", DUE, "100.00", "EUR"))
        self("import", "invoices", self.file("invoices.csv", invoices))

    def run(self, day: date | int, *extra: str) -> dict[str, Any]:
        as_of = DUE + timedelta(days=day) if isinstance(day, int) else day
        return self.json("run", "--as-of", as_of.isoformat(), *extra)[0]

    def plans(self) -> list[dict[str, Any]]:
        return sorted(self.json("plans"), key=lambda p: p["id"])

    def log(self, *args: str) -> list[dict[str, Any]]:
        return self.json("log", "--limit", "100000", *args)


def invoice_csv(*rows: tuple[Any, ...]) -> str:
    lines = [
        "id,customer_id,number,type,issue_date,due_date,currency,amount,amount_due,status,disputed"
    ]
    for row in rows:
        inv, cust, due, amount, cur = row[:5]
        amount_due = row[5] if len(row) > 5 else amount
        lines.append(
            f"{inv},{cust},N-{inv},commercial,{due - timedelta(days=30)},{due},{cur},{amount},"
            f"{amount_due},open,false"
        )
    return "\n".join(lines) + "\n"


def payment_csv(invoice_id: str, amount: str, day: date) -> str:
    return (
        f"id,customer_id,invoice_id,amount,currency,date\nP1,C1,{invoice_id},{amount},EUR,{day}\n"
    )


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def outbox(env: dict[str, str]) -> list[Path]:
    folder = Path(env["RECOUP_DATA_DIR"]) / "outbox"
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def test_reminder_before_due_then_each_level_on_its_day(cli: Cli, env: dict[str, str]) -> None:
    cli.setup()
    assert cli.run(-4)["reminders"] == 0
    stats = cli.run(-3)
    assert stats["reminders"] == 1 and stats["actions_done"] == 1
    assert len(outbox(env)) == 1
    assert "Invoice N-I1 is due soon" in outbox(env)[0].read_text()
    assert cli.run(4)["plans_opened"] == 0
    opened = cli.run(5)
    assert opened["plans_opened"] == 1
    [plan] = cli.plans()
    assert plan["level"] == "first_notice" and plan["status"] == "active"
    assert plan["balance"] == "100.00"
    charges = cli.json("charges")
    assert [(c["amount"], c["currency"], c["service"]) for c in charges] == [
        ("15.00", "EUR", "LATE_FEE")
    ]
    assert cli.run(9)["plans_advanced"] == 0
    assert cli.run(10)["plans_advanced"] == 1
    assert cli.plans()[0]["level"] == "second_notice"
    events = [e["event"] for e in cli.log("--plan", str(plan["id"]))]
    assert events.count("level_reached") == 2
    assert "plan_opened" in events and "charge_created" in events


def test_same_day_twice_creates_nothing_new(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    before = len(cli.log())
    again = cli.run(5)
    assert again["plans_opened"] == 0 and again["actions_queued"] == 0
    after = cli.log()
    assert [e for e in after if e["event"] not in ("run_started", "run_finished")][before:] == []
    assert len(cli.json("charges")) == 1


def test_min_balance_per_currency(cli: Cli) -> None:
    # EUR 40 is below the EUR 50 minimum; USD has no minimum, so USD 10 is dunned
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "40.00", "EUR"), ("I2", "C2", DUE, "10.00", "USD"))
    )
    cli.run(5)
    assert [(p["invoice_id"], p["currency"]) for p in cli.plans()] == [("I2", "USD")]
    explained = cli("explain", "I1", "--as-of", (DUE + timedelta(days=5)).isoformat())
    assert "below the policy's minimum balance" in explained
    assert "Balance: 40.00 EUR" in explained  # the currency's decimals, as on the invoice


def test_explain_shows_ids_in_brackets_as_they_are(cli: Cli) -> None:
    # an id is data: "[urgent]" once vanished as Rich markup
    cli.setup(invoices=invoice_csv(("[urgent]-7", "C1", DUE, "100", "EUR")))
    explained = cli("explain", "[urgent]-7", "--as-of", (DUE + timedelta(days=5)).isoformat())
    assert "Invoice [urgent]-7 of customer C1" in explained
    assert "Balance: 100.00 EUR" in explained


def test_transition_with_balance_skips_a_level(cli: Cli) -> None:
    cli.setup(
        transition="days_overdue_and_balance",
        second_min=', min_balance: {EUR: "500.00"}',
    )
    cli.run(5)
    cli.run(10)
    [plan] = cli.plans()
    assert plan["level"] == "second_notice"
    skipped = cli.log("--event", "level_skipped", "--plan", str(plan["id"]))
    assert skipped and "below the level's minimum" in skipped[-1]["details"]["reason"]


@pytest.mark.parametrize(
    ("catch_up", "emails_at_second"),
    [("latest", 1), ("all", 2)],
)
def test_catch_up_after_a_gap(
    cli: Cli, env: dict[str, str], catch_up: str, emails_at_second: int
) -> None:
    cli.setup(catch_up=catch_up)
    cli.run(-3)  # reminder
    stats = cli.run(12)  # a gap: first_notice (5) and second_notice (10) both passed
    assert stats["plans_opened"] == 1
    [plan] = cli.plans()
    assert plan["level"] == "second_notice"
    assert len(outbox(env)) == 1 + emails_at_second
    fees = cli.json("charges")
    assert len(fees) == (1 if catch_up == "all" else 0)
    if catch_up == "latest":
        # the plan opened today: its opening entry records the level it passed over
        [opened] = cli.log("--event", "plan_opened", "--plan", str(plan["id"]))
        [passed] = opened["details"]["levels_skipped"]
        assert passed["level"] == "first_notice" and "catch_up latest" in passed["reason"]
        assert passed["actions"] == ["email_notice", "fee_15"]
        assert cli.log("--event", "level_skipped", "--plan", str(plan["id"])) == []


def test_an_open_plan_catching_up_logs_each_level_passed_over(cli: Cli) -> None:
    cli.setup()
    cli.run(5)  # the plan opens at first_notice
    cli.run(30)  # a gap: second_notice (10) and call (15) passed over, final (20) reached
    [plan] = cli.plans()
    assert plan["level"] == "final"
    plan_id = str(plan["id"])
    [opened] = cli.log("--event", "plan_opened", "--plan", plan_id)
    assert "levels_skipped" not in opened["details"]
    skipped = cli.log("--event", "level_skipped", "--plan", plan_id)
    assert [e["level"] for e in skipped] == ["second_notice", "call"]
    assert all("catch_up latest" in e["details"]["reason"] for e in skipped)
    reached = cli.log("--event", "level_reached", "--plan", plan_id)
    assert [e["level"] for e in reached] == ["first_notice", "final"]
    assert cli.json("tasks") == []  # the passed-over call created no task


def test_manual_task_holds_the_plan_until_completed(cli: Cli) -> None:
    cli.setup()
    cli.run(15)
    [plan] = cli.plans()
    assert plan["level"] == "call"
    [task] = cli.json("tasks")
    assert task["role"] == "collector" and task["status"] == "open" and task["action"] == "call"
    cli.run(25)  # far past the end level's day: still held at `call`
    assert cli.plans()[0]["level"] == "call"
    cli("task", "claim", str(task["id"]), "--user", "alice")
    cli("task", "claim", str(task["id"]), "--user", "bob", code=1)
    cli("task", "complete", str(task["id"]), "--user", "alice", "--note", "promised Friday")
    assert cli.json("tasks") == []  # done: no longer waiting
    assert cli.json("tasks", "--all")[0]["status"] == "completed"
    completed = cli.log("--event", "task_completed")
    assert completed[-1]["actor"] == "alice"
    cli.run(26)
    assert cli.plans()[0]["level"] == "final"


def test_the_run_summary_says_where_to_look_after_failures_and_tasks(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(ctx: ActionContext) -> ActionOutcome:
        raise PermanentFailure("the mail server refused the recipient")

    executor_for("send_email")  # the executors registered first, then ours over theirs
    monkeypatch.setitem(EXECUTORS, "send_email", refused)
    cli.setup()
    out = " ".join(cli("run", "--as-of", str(DUE + timedelta(days=5)), "--quiet").split())
    assert "1 action(s) failed: `recoup log --event action_failed` says why" in out
    [failed] = cli.log("--event", "action_failed")
    assert failed["details"]["error"] == "the mail server refused the recipient"
    [task] = cli.json("tasks")  # the failure's task holds the plan (R6) until done
    cli("task", "complete", str(task["id"]), "--user", "alice", "--note", "phoned instead")
    out = " ".join(cli("run", "--as-of", str(DUE + timedelta(days=15)), "--quiet").split())
    assert "1 task(s) wait for a person: `recoup tasks`" in out  # the call
    assert "action(s) failed" not in out


def test_end_level_closes_unrecovered_and_full_payment_recovers(cli: Cli) -> None:
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C1", DUE, "200.00", "EUR"))
    )
    cli.run(15)
    for task in cli.json("tasks"):
        cli("task", "complete", str(task["id"]), "--user", "alice")
    stats = cli.run(20)
    assert stats["plans_unrecovered"] == 2
    assert {p["status"] for p in cli.plans()} == {"unrecovered"}
    assert [e["details"]["status"] for e in cli.log("--event", "status_changed")] == ["suspended"]


def test_full_payment_recovers_cancels_pending_and_restores_status(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    cli.run(20, "--no-execute")  # final level queued: suspension pending
    [plan] = cli.plans()
    assert plan["level"] == "final"
    payment = payment_csv("I1", "100.00", DUE + timedelta(days=21))
    cli("import", "payments", cli.file("payments.csv", payment))
    [plan] = cli.plans()
    assert plan["status"] == "recovered"
    cancelled = cli.log("--event", "action_cancelled", "--plan", str(plan["id"]))
    assert [e["action"] for e in cancelled] == ["suspend"]
    # nothing is sent for a debt that is paid
    assert cli.run(22)["actions_done"] == 0


def test_status_restored_when_plan_recovers(cli: Cli) -> None:
    cli.setup()
    suspend_first = POLICY_YAML.format(
        mode="invoice", catch_up="latest", transition="days_overdue", second_min=""
    ).replace("actions: [email_notice, fee_15]", "actions: [suspend]")
    cli("config", "apply", cli.file("policy2.yaml", suspend_first))
    cli.run(5)
    changed = cli.log("--event", "status_changed")
    assert [(e["customer_id"], e["details"]["status"]) for e in changed] == [("C1", "suspended")]
    payment = payment_csv("I1", "100.00", DUE + timedelta(days=6))
    cli("import", "payments", cli.file("payments.csv", payment))
    assert cli.plans()[0]["status"] == "recovered"
    restored = cli.log("--event", "status_restored")
    assert [(e["customer_id"], e["details"]["status"]) for e in restored] == [("C1", "active")]


def test_partial_payment_keeps_the_plan_on_the_lower_balance(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    payment = payment_csv("I1", "30.00", DUE + timedelta(days=6))
    cli("import", "payments", cli.file("payments.csv", payment))
    [plan] = cli.plans()
    assert plan["status"] == "active"
    assert plan["balance"] == "70.00"
    cli.run(10)
    assert cli.plans()[0]["level"] == "second_notice"


def test_pause_and_resume_shift_the_schedule(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    [plan] = cli.plans()
    pid = str(plan["id"])
    cli(
        "pause",
        pid,
        "--reason",
        "promise to pay",
        "--until",
        str(DUE + timedelta(days=9)),
        "--on",
        str(DUE + timedelta(days=6)),
        "--user",
        "alice",
    )
    assert cli.plans()[0]["status"] == "paused"
    assert cli.run(8)["plans_advanced"] == 0
    # paused 3 days (6 -> 9): second_notice (10) now comes on day 13
    assert cli.run(12)["plans_advanced"] == 0
    assert cli.plans()[0]["status"] == "active"
    assert cli.run(13)["plans_advanced"] == 1
    # a manual pause without an until date, then resume by hand
    cli("pause", pid, "--reason", "checking", "--on", str(DUE + timedelta(days=14)))
    cli("resume", pid, "--on", str(DUE + timedelta(days=16)))
    assert cli.run(17)["plans_advanced"] == 0
    explained = cli.json("explain", "I1", "--as-of", str(DUE + timedelta(days=17)))[0]
    assert explained["next_level"] == "call"
    assert explained["next_on"] == str(DUE + timedelta(days=20))  # 15 + 5 paused days


def test_dispute_pauses_and_undispute_resumes(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    cli("invoice", "dispute", "I1", "--user", "alice")
    [plan] = cli.plans()
    assert plan["status"] == "paused"
    assert cli.run(10)["plans_advanced"] == 0
    cli("invoice", "undispute", "I1", "--user", "alice")
    assert cli.plans()[0]["status"] == "active"
    explained = cli("explain", "I1", "--as-of", str(DUE + timedelta(days=12)))
    assert "Plan" in explained


def test_stop_cancels_pending_work(cli: Cli) -> None:
    cli.setup()
    cli.run(5, "--no-execute")
    [plan] = cli.plans()
    cli("stop", str(plan["id"]), "--reason", "sent to agency", "--user", "alice")
    [plan] = cli.plans()
    assert plan["status"] == "stopped"
    assert cli.run(30)["plans_advanced"] == 0
    assert {e["action"] for e in cli.log("--event", "action_cancelled")} == {
        "email_notice",
        "fee_15",
    }
    cli("resume", str(plan["id"]), code=1)


def test_customer_mode_per_currency_with_joining_and_anchor(cli: Cli) -> None:
    cli.setup(
        mode="customer",
        invoices=invoice_csv(
            ("A", "C1", DUE, "30.00", "EUR"),
            ("B", "C1", DUE + timedelta(days=3), "40.00", "EUR"),
            ("C", "C1", DUE + timedelta(days=8), "60.00", "EUR"),
            ("U", "C1", DUE, "20.00", "USD"),
        ),
    )
    cli.run(5)
    plans = cli.plans()
    assert [(p["currency"], p["balance"], p["invoice_id"]) for p in plans] == [
        ("EUR", "70.00", None),
        ("USD", "20.00", None),
    ]
    # C falls due and joins; paying A moves the anchor to B's due date
    cli.run(8)
    payment = payment_csv("A", "30.00", DUE + timedelta(days=9))
    cli("import", "payments", cli.file("payments.csv", payment))
    cli.run(9)
    eur = [p for p in cli.plans() if p["currency"] == "EUR"][0]
    assert eur["balance"] == "100.00"
    joined = cli.log("--event", "invoice_joined")
    assert [e["invoice_id"] for e in joined] == ["C"]
    explained = cli.json("explain", "B", "--as-of", str(DUE + timedelta(days=9)))[0]
    assert explained["days_overdue"] == 6  # anchored on B (due day 3), not A


def test_bad_as_of_is_refused(cli: Cli) -> None:
    cli.setup()
    out = cli("run", "--as-of", "2026-13-40", code=1)
    assert "--as-of" in out and "not a date" in out
    assert cli.json("plans") == []


def test_a_quiet_day_reads_only_what_is_due(cli: Cli) -> None:
    """R15: the run looks only at plans due for a step and invoices crossing a trigger."""
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE + timedelta(days=40), "100.00", "EUR"),
        )
    )
    first = cli.run(5)
    assert first["considered"] == 2  # both are new to the engine
    assert (
        cli.run(6)["considered"] == 0
    )  # nothing due: I1's next level is day 10, I2's reminder day 37
    assert cli.run(10)["considered"] == 1  # I1 reaches second_notice
    assert cli.run(37)["considered"] == 2  # I2's reminder, and I1 catching up to its call


def test_the_log_table_puts_the_details_in_words(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.setup()
    cli.run(12)  # opens after first_notice passed: recorded in the plan_opened entry
    [plan] = cli.plans()

    def words(table: str) -> str:  # the table's text, wrapped cells joined again
        return " ".join(table.replace("│", " ").split())

    monkeypatch.setattr(cli_console, "_width", 160)
    wide = cli("log", "--plan", str(plan["id"]))
    assert "levels_skipped: first_notice (passed over: catch_up latest runs only" in words(wide)
    assert "second_notice days_overdue: 12; actions: email_notice" in words(wide)
    monkeypatch.setattr(cli_console, "_width", 80)  # narrow: the step moves into the details
    narrow = cli("log", "--plan", str(plan["id"]))
    assert "[second_notice] days_overdue: 12" in words(narrow)
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_a_long_word_in_the_log_details_folds_instead_of_being_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = "/srv/recoup/data/documents/2026/11/30/12345-final-letter_final.pdf"
    row = {"on": "2026-11-30", "event": "action_done", "details": f"path: {path}; pages: 1"}
    monkeypatch.setattr(cli_console, "_width", 80)
    with cli_console.capture() as captured:
        print_table([row], ["on", "event", "details"], title="Log", wrap="details")
    lines = captured.get().splitlines()
    start = lines[1].index("details")  # the details column, its lines joined again
    details = "".join(line[start:].strip() for line in lines[3:])
    assert "…" not in details and path in details


def test_the_plans_table_never_cuts_an_amount_a_date_or_an_id(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoices = invoice_csv(
        ("I1", "C1", DUE, "100.00", "EUR"),
        ("INV-000123", "C1", DUE - timedelta(days=3), "1234567.89", "EUR"),
    )
    cli.setup(invoices=invoices)
    cli.run(12)
    plans = cli.plans()
    assert {p["invoice_id"] for p in plans} == {"I1", "INV-000123"}
    assert {p["status"] for p in plans} == {"active"}
    for width in (80, 50):
        monkeypatch.setattr(cli_console, "_width", width)
        table = cli("plans")
        lines = table.splitlines()
        for plan in plans:
            # each plan's line holds its id, invoice, amount with its currency and date whole
            [line] = [ln for ln in lines if f" {plan['invoice_id']} " in ln]
            assert f"{plan['balance']} EUR" in line
            assert plan["opened_on"] in line and line.split()[0] == str(plan["id"])
        assert "…" not in table
        if width == 80:  # the table fits an 80-column terminal
            assert max(len(line) for line in lines) <= 80
    assert "1234567.89 EUR" in table  # 50 columns: wider lines, the terminal wraps them


@pytest.mark.parametrize("mode", ["invoice", "customer"])
def test_an_invoice_under_an_open_plan_cannot_move_to_another_customer(cli: Cli, mode: str) -> None:
    cli.setup(mode=mode)
    cli.run(6)
    [plan] = cli.plans()
    moved = cli.file("moved.csv", invoice_csv(("I1", "C2", DUE, "100.00", "EUR")))
    out = " ".join(cli("import", "invoices", moved, code=1).split())  # unwrapped
    assert "line 2, customer_id: cannot move invoice I1 to customer C2" in out
    assert f"plan {plan['id']} of customer C1 is dunning it (stop plan {plan['id']} first)" in out
    assert cli.json("explain", "I1")[0]["customer_id"] == "C1"  # nothing changed
    cli("stop", str(plan["id"]), "--reason", "invoice reassigned", "--user", "alice")
    cli("import", "invoices", moved)  # no open plan: the move goes through
    assert cli.json("explain", "I1")[0]["customer_id"] == "C2"


def test_a_run_without_policies_says_how_to_configure_them(cli: Cli) -> None:
    cli("init")
    out = " ".join(cli("run", code=1).split())
    # the service says what is missing; the CLI adds its own command
    assert "no policies configured yet: run `recoup config apply FILE` first" in out
