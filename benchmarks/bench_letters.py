"""Letters per second: the send_letter executor end to end (render the template and the
layout, print the PDF with WeasyPrint, write the file, store the Document, record the instance)
for N invoice-mode plans, each with a pending send_letter instance, on a fresh SQLite database.
Prints each repeat and the median.

    .venv/bin/python benchmarks/bench_letters.py            # 50 letters, median of 3
    .venv/bin/python benchmarks/bench_letters.py --n 200 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from recoup.actions.registry import executor_for
from recoup.actions.runner import execute_pending
from recoup.core.db import make_engine, make_sessionmaker
from recoup.core.env import EnvConfig
from recoup.core.migrate import upgrade
from recoup.models import (
    ActionInstance,
    ActionRow,
    Customer,
    Invoice,
    LevelRow,
    Plan,
    PlanInvoice,
    PolicyRow,
    SettingsRow,
    TemplateRow,
)

TODAY = date(2024, 3, 1)
NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
BODY = (
    "Madame, Monsieur,\n\nSauf erreur de notre part, la facture {{ invoice.number }} du "
    "{{ invoice.issue_date|date }} reste impayée : {{ balance|money }}.\n\n"
    "Merci de la régler sous huit jours."
)


def build(workdir: Path, n: int) -> tuple[str, EnvConfig]:
    url = f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with factory() as session, session.begin():
        settings = session.get(SettingsRow, 1)  # created by the migrations
        assert settings is not None
        settings.company = {
            "name": "Nimbus Cloud SAS",
            "address": "12 rue de la Paix\n75002 Paris",
            "email": "ar@nimbus.example",
            "city": "Paris",
            "vat": "FR12345678901",
        }
        session.add(
            TemplateRow(
                code="final_letter", channel="letter", language="fr", subject=None, body=BODY
            )
        )
        session.add(
            ActionRow(code="letter_final", type="send_letter", params={"template": "final_letter"})
        )
        policy = PolicyRow(name="Standard", priority=10, is_default=True)
        policy.levels.append(LevelRow(code="final", days=20, actions=["letter_final"], position=0))
        policy.levels.append(LevelRow(code="closing", days=40, end=True, position=1))
        session.add(policy)
        session.flush()
        for i in range(n):
            customer = Customer(
                id=f"C{i}",
                name=f"Client {i} SARL",
                language="fr",
                country="FR",
                address=f"Client {i} SARL\n{i + 1} avenue des Tests\n69001 Lyon",
            )
            due = TODAY - timedelta(days=30 + i % 20)
            amount = Decimal("100.00") + Decimal(i) / Decimal(4)
            invoice = Invoice(
                id=f"I{i}",
                customer_id=customer.id,
                number=f"F-{i:05d}",
                issue_date=due - timedelta(days=30),
                due_date=due,
                currency="EUR",
                amount=amount,
                amount_due=amount,
            )
            session.add_all([customer, invoice])
            session.flush()
            plan = Plan(
                customer_id=customer.id,
                invoice_id=invoice.id,
                currency="EUR",
                mode="invoice",
                policy_id=policy.id,
                level="final",
                balance=amount,
                opened_on=due,
                anchor_date=due,
                open_key=f"inv:{invoice.id}",
            )
            session.add(plan)
            session.flush()
            session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, joined_on=due))
            session.add(
                ActionInstance(
                    key=f"plan:{plan.id}:final:letter_final",
                    plan_id=plan.id,
                    invoice_id=invoice.id,
                    customer_id=customer.id,
                    policy_id=policy.id,
                    level="final",
                    action="letter_final",
                    type="send_letter",
                    next_attempt_at=NOW,
                    due_on=TODAY,
                )
            )
    engine.dispose()
    return url, EnvConfig(database_url=url, data_dir=workdir / "data", smtp_url=None, user=None)


def measure(n: int) -> tuple[float, float]:
    """(letters per second of wall time, letters per second of this process's CPU time)."""
    with tempfile.TemporaryDirectory(prefix="recoup-bench-letters-") as tmp:
        url, env = build(Path(tmp), n)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        start, cpu = time.perf_counter(), time.process_time()
        stats = execute_pending(factory, env=env, today=TODAY, now=lambda: NOW)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        engine.dispose()
        if stats.done != n:
            raise SystemExit(f"expected {n} letters, got {stats.as_dict()}")
        return n / elapsed, n / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="letters per repeat (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh databases (default 3)")
    args = parser.parse_args()
    executor_for("send_letter")  # import the executors (and WeasyPrint) outside the timing
    import weasyprint

    weasyprint.HTML(string="<p>warm up</p>").write_pdf()
    rates, cpu_rates = [], []
    for index in range(args.repeat):
        rate, cpu_rate = measure(args.n)
        rates.append(rate)
        cpu_rates.append(cpu_rate)
        print(
            f"repeat {index + 1}: {args.n} letters, {rate:.1f} letters/s "
            f"({cpu_rate:.1f} per CPU second)"
        )
    print(
        f"median: {statistics.median(rates):.1f} letters/s "
        f"({statistics.median(cpu_rates):.1f} per CPU second; sqlite, {args.n} letters)"
    )


if __name__ == "__main__":
    main()
