"""`recoup report`: receivables, aging and recovery per currency, exact in JSON, localised
with charts in the table; the pure aging buckets."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from recoup.domain.aging import aging_bucket
from recoup.reports.text import bar, whole
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

TODAY = date(2026, 6, 30)


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.mark.parametrize(
    ("days_past_due", "bucket"),
    [(-30, "current"), (0, "current"), (1, "1_30"), (30, "1_30"), (31, "31_60")]
    + [(60, "31_60"), (61, "61_90"), (90, "61_90"), (91, "over_90"), (4000, "over_90")],
)
def test_aging_buckets(days_past_due: int, bucket: str) -> None:
    assert aging_bucket(TODAY - timedelta(days=days_past_due), TODAY).key == bucket


def test_whole_amounts_follow_the_locale() -> None:
    assert whole(Decimal("1234.50"), "EUR", "en_US") == "€1,235"  # half up
    assert whole(Decimal("1234.49"), "EUR", "fr_FR") == "1\u202f234\u00a0€"
    assert whole(Decimal("2821548"), "JPY", "de_DE") == "2.821.548\u00a0¥"
    assert bar(0.5) == "███░░░  50%" and bar(None) == ""


def _book(cli: Cli) -> date:
    """EUR: I1 100 (40 days late), I2 200 partly paid (20 days), I3 300 disputed (not due).
    USD: I4 1000 (100 days late), I5 80 paid in full. Returns the report date."""
    as_of = DUE + timedelta(days=40)
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE + timedelta(days=20), "200.00", "EUR"),
            ("I3", "C1", DUE + timedelta(days=50), "300.00", "EUR"),
            ("I4", "C2", DUE - timedelta(days=60), "1000.00", "USD"),
            ("I5", "C2", DUE, "80.00", "USD"),
        )
    )
    cli.run(5)  # I1's first notice: a late fee
    cli.run(10)
    payments = (
        "id,customer_id,invoice_id,amount,currency,date\n"
        f"P1,C2,I5,80.00,USD,{DUE + timedelta(days=11)}\n"
        f"P2,C1,I2,50.00,EUR,{DUE + timedelta(days=11)}\n"
    )
    cli("import", "payments", cli.file("payments.csv", payments))
    cli("invoice", "dispute", "I3", "--reason", "wrong quantity")
    cli.run(40)
    return as_of


def test_report_figures_per_currency(cli: Cli) -> None:
    as_of = _book(cli)
    eur, usd = cli.json("report", "--as-of", str(as_of))
    assert (eur["currency"], usd["currency"], eur["as_of"]) == ("EUR", "USD", str(as_of))
    assert {k: eur[k] for k in ("billed", "collected", "outstanding", "disputed")} == {
        "billed": "600.00",
        "collected": "50.00",
        "outstanding": "550.00",
        "disputed": "300.00",
    }
    assert (eur["invoices"], eur["invoices_open"]) == (3, 3)
    assert eur["aging"] == {
        "current": {"amount": "300.00", "invoices": 1},
        "1_30": {"amount": "150.00", "invoices": 1},
        "31_60": {"amount": "100.00", "invoices": 1},
        "61_90": {"amount": "0.00", "invoices": 0},
        "over_90": {"amount": "0.00", "invoices": 0},
    }
    assert (usd["billed"], usd["collected"], usd["outstanding"]) == ("1080.00", "80.00", "1000.00")
    assert usd["aging"]["over_90"] == {"amount": "1000.00", "invoices": 1}
    # fees: what the charges say; plans: what `recoup plans` lists
    charged = Counter[str]()
    for charge in cli.json("charges"):
        charged[charge["currency"]] += int(Decimal(charge["amount"]) * 100)
    assert Decimal(eur["fees"]) * 100 == charged["EUR"] > 0
    plans = Counter((p["currency"], p["status"]) for p in cli.json("plans"))
    for row in (eur, usd):
        assert {s: n for s, n in row["plans"].items() if n} == {
            status: n for (currency, status), n in plans.items() if currency == row["currency"]
        }
    assert usd["plans"]["recovered"] == 1  # I5, paid
    ended = usd["plans"]["recovered"] + usd["plans"]["unrecovered"]
    assert usd["recovery_rate"] == pytest.approx(1 / ended)


def test_report_table_is_localised_with_charts(cli: Cli) -> None:
    as_of = _book(cli)
    table = cli("report", "--as-of", str(as_of))
    assert f"Receivables on {as_of}" in table
    assert "$1,080" in table and "€550" in table  # whole units, the locale's symbols
    [line] = [ln for ln in table.splitlines() if ln.startswith("USD") and "90+" in ln]
    assert "$1,000" in line and "██████ 100%" in line
    french = cli("report", "--as-of", str(as_of), "--locale", "fr_FR")
    assert "550\u00a0€" in french


def test_report_refuses_bad_input(cli: Cli) -> None:
    cli.setup()
    assert "--as-of" in cli("report", "--as-of", "2026-02-30", code=1)
    assert "'xx' is not a known locale" in cli("report", "--locale", "xx", code=1)


def test_report_on_an_empty_book(cli: Cli) -> None:
    cli("init")
    assert cli.json("report") == []
    assert "no invoices yet" in cli("report")


def test_report_shows_fees_charged_waived_and_still_owed(cli: Cli) -> None:
    """A paid invoice with its late fee unpaid is not "owed 0, 100 % collected"."""
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C1", DUE, "50.00", "EUR"))
    )
    cli.run(5)  # a 15.00 fee on each invoice
    [first, second] = cli.json("charges")
    cli("charge", "waive", str(first["id"]), "--reason", "goodwill", "--user", "alice")
    payments = (
        "id,customer_id,invoice_id,amount,currency,date\n"
        f"P1,C1,I1,100.00,EUR,{DUE + timedelta(days=6)}\n"
        f"P2,C1,I2,50.00,EUR,{DUE + timedelta(days=6)}\n"
    )
    cli("import", "payments", cli.file("payments.csv", payments))
    as_of = str(DUE + timedelta(days=6))
    [eur] = cli.json("report", "--as-of", as_of)
    assert eur["outstanding"] == "0.00"
    assert (eur["fees"], eur["fees_waived"], eur["fees_owed"]) == ("30.00", "15.00", "15.00")
    assert (eur["fees_exported"], eur["total_owed"]) == ("0.00", "15.00")
    table = cli("report", "--as-of", as_of)
    lines = table.splitlines()
    book = next(line for line in lines if line.startswith("EUR"))
    assert "100%" not in book and "91%" in book  # 150 collected of 165 due
    fees = lines[next(i for i, line in enumerate(lines) if "Late fees" in line) :]
    assert "still owed" in fees[1]
    assert next(line for line in fees if line.startswith("EUR")).split() == [
        "EUR",
        "€30",
        "€15",
        "€0",
        "€15",
        "€15",
    ]
    cli("charge", "export", str(second["id"]), "--user", "erp")
    [eur] = cli.json("report", "--as-of", as_of)
    assert (eur["fees_owed"], eur["fees_exported"], eur["total_owed"]) == ("0.00", "15.00", "0.00")
