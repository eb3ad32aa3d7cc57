"""Benchmark of the daily run (R15) on a large book. A script that prints figures, not a test.

For each database and each repeat: a fresh database, ~N/5 customers and N open invoices due
uniformly over the past 120 and the next 30 days (bulk Core inserts, each with an invoice check
at CHECK_NOW as the import sets it), one realistic policy applied through the config service.
Then three runs with execute=False, each in a fresh subprocess timed around `run_dunning` with
time.perf_counter, its peak memory read from ru_maxrss (its own plus its deciding child's):

  first      the first run over the whole book (as-of D)
  next day   the following day (D + 1)
  nothing    D + 1 again: nothing new to do

    .venv/bin/python benchmarks/run_bench.py --n 100000 --db both --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text

from recoup.core.db import make_engine, make_sessionmaker, unit_of_work
from recoup.core.env import EnvConfig
from recoup.core.migrate import upgrade
from recoup.models import Customer, Invoice, InvoiceCheck
from recoup.policies.service import apply_document
from recoup.schedule.service import CHECK_NOW

AS_OF = date(2026, 6, 1)
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
PG_DATABASE = "recoup_bench"
BATCH = 10_000
TARGETS = {"first": 10.0, "next day": 1.0, "nothing": 0.5}  # seconds
MEMORY_TARGET_MB = 500.0
RUNS = (
    ("first", AS_OF),
    ("next day", AS_OF + timedelta(days=1)),
    ("nothing", AS_OF + timedelta(days=1)),
)

POLICY: dict[str, Any] = {
    "settings": {"mode": "invoice", "invoice_types": ["commercial"], "timezone": "UTC"},
    "templates": [
        {
            "code": "reminder",
            "channel": "email",
            "language": "en",
            "subject": "Invoice {{ invoice.number }} is due on {{ invoice.due_date|date }}",
            "body": "Dear {{ customer.name }}, {{ balance|money }} is due soon.",
        },
        {
            "code": "notice",
            "channel": "email",
            "language": "en",
            "subject": "Invoice {{ invoice.number }} is overdue",
            "body": "Dear {{ customer.name }}, {{ balance|money }} is overdue.",
        },
        {
            "code": "final_letter",
            "channel": "letter",
            "language": "en",
            "body": "Dear {{ customer.name }}, final notice: {{ balance|money }}.",
        },
    ],
    "actions": [
        {"code": "email_reminder", "type": "send_email", "template": "reminder"},
        {"code": "email_notice", "type": "send_email", "template": "notice"},
        {
            "code": "fee_15",
            "type": "late_fee_fixed",
            "amounts": {"EUR": "15.00", "USD": "15.00"},
            "service": "LATE_FEE",
        },
        {"code": "letter_final", "type": "send_letter", "template": "final_letter"},
        {"code": "suspend", "type": "change_account_status", "status": "suspended"},
    ],
    "policies": [
        {
            "name": "Standard",
            "default": True,
            "priority": 10,
            "min_balance": {"EUR": "5.00", "USD": "5.00"},
            "levels": [
                {"code": "before_due", "days": -3, "reminder": True, "actions": ["email_reminder"]},
                {"code": "first_notice", "days": 5, "actions": ["email_notice", "fee_15"]},
                {"code": "second_notice", "days": 10, "actions": ["email_notice", "letter_final"]},
                {"code": "final", "days": 20, "end": True, "actions": ["letter_final", "suspend"]},
            ],
        }
    ],
}


# --- building the book ---------------------------------------------------------------------


def build_book(url: str, n: int, seed: int) -> float:
    """Schema, policy and book; returns the seconds spent inserting the book."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with unit_of_work(factory) as session:
            apply_document(session, POLICY, "bench")
        rng = random.Random(seed)
        customers = max(1, n // 5)
        began = time.perf_counter()
        with engine.begin() as conn:
            for start in range(0, customers, BATCH):
                conn.execute(
                    insert(Customer),
                    [
                        {
                            "id": f"C{i:07d}",
                            "name": f"Customer {i}",
                            "email": f"c{i}@example.com",
                            "language": "en",
                            "country": "FR",
                            "currency": "EUR",
                            "category": "smb",
                            "is_company": i % 3 == 0,
                            "status": "active",
                            "excluded": False,
                            "attributes": {},
                        }
                        for i in range(start, min(start + BATCH, customers))
                    ],
                )
            for start in range(0, n, BATCH):
                rows = []
                for i in range(start, min(start + BATCH, n)):
                    due = AS_OF + timedelta(days=rng.randint(-120, 30))
                    amount = Decimal(rng.randint(1_000, 100_000)) / 100
                    rows.append(
                        {
                            "id": f"I{i:08d}",
                            "customer_id": f"C{rng.randrange(customers):07d}",
                            "number": f"2026-{i:08d}",
                            "type": "commercial",
                            "issue_date": due - timedelta(days=30),
                            "due_date": due,
                            "currency": "EUR",
                            "amount": amount,
                            "amount_due": amount,
                            "status": "open",
                            "disputed": False,
                        }
                    )
                conn.execute(insert(Invoice), rows)
                conn.execute(
                    insert(InvoiceCheck),
                    [{"invoice_id": row["id"], "check_on": CHECK_NOW} for row in rows],
                )
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        return time.perf_counter() - began
    finally:
        engine.dispose()


def pg_recreate(base: str) -> str:
    admin = make_engine(base + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
    finally:
        admin.dispose()
    return base + PG_DATABASE


def pg_drop(base: str) -> None:
    admin = make_engine(base + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- one measured run, in its own process --------------------------------------------------


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server's processes (backends, WAL
    writer, checkpointer), read from /proc; None when there is none to read. A backend that
    has ended counts in the postmaster's figure for its waited-for children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    found = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone since listed
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name != "postgres" and not name.startswith("postgres:"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime: fields 14 to 17 of proc(5) stat
        total += sum(int(value) for value in fields[11:15])
        found = True
    return total / tick if found else None


def run_cpu_seconds() -> float:
    """User and system CPU seconds of this process and its (ended) children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child(url: str, as_of: date, data_dir: str, profile: str | None) -> None:
    from recoup.runs.service import run_dunning

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    env = EnvConfig(database_url=url, data_dir=Path(data_dir), smtp_url=None, user="bench")
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    local_server = engine.dialect.name == "postgresql" and engine.url.host in (
        None,
        "",
        "localhost",
        "127.0.0.1",
        "::1",
    )
    server_before = server_cpu_seconds() if local_server else None
    cpu_before = run_cpu_seconds()
    began = time.perf_counter()
    stats = run_dunning(factory, as_of=as_of, env=env, execute=False, actor="bench")
    seconds = time.perf_counter() - began
    cpu = run_cpu_seconds() - cpu_before
    server_after = server_cpu_seconds() if server_before is not None else None
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    engine.dispose()
    # KiB on Linux; the run decides in a child process: both peaks added (pages they share
    # are counted twice, so the figure errs high)
    maxrss_kb = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "server_cpu_seconds": (
                    server_after - server_before
                    if server_before is not None and server_after is not None
                    else None
                ),
                "maxrss_mb": maxrss_kb / 1024,
                "considered": stats.considered,
                "plans_opened": stats.plans_opened,
                "reminders": stats.reminders,
                "actions_queued": stats.actions_queued,
            }
        )
    )


def measure(url: str, as_of: date, data_dir: str, profile: str | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", url, as_of.isoformat(), data_dir]
    if profile:
        command.append(profile)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"measured run failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the report ----------------------------------------------------------------------------


def bench_database(
    kind: str, n: int, repeat: int, pg_base: str, console: Console, profile_dir: str | None
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in RUNS}
    for attempt in range(1, repeat + 1):
        with tempfile.TemporaryDirectory(prefix="recoup-bench-") as tmp:
            url = (
                f"sqlite:///{Path(tmp) / 'bench.db'}" if kind == "sqlite" else pg_recreate(pg_base)
            )
            try:
                insert_s = build_book(url, n, seed=attempt)
                load = os.getloadavg()[0]
                line = [f"{kind} #{attempt} (load {load:.1f}): book inserted in {insert_s:.1f} s"]
                for label, as_of in RUNS:
                    profile = None
                    if profile_dir and attempt == 1:
                        profile = str(Path(profile_dir) / f"{kind}-{label.replace(' ', '_')}.prof")
                    figures = measure(url, as_of, tmp, profile)
                    results[label].append(figures)
                    line.append(
                        f"{label} {figures['seconds']:.2f} s, CPU {cpu_text(figures)} "
                        f"({figures['considered']} units, {figures['plans_opened']} plans opened, "
                        f"{figures['actions_queued']} actions queued, "
                        f"{figures['maxrss_mb']:.0f} MB)"
                    )
                console.print("; ".join(line), highlight=False)
            finally:
                if kind == "postgresql":
                    pg_drop(pg_base)
    return results


def cpu_text(figures: dict[str, Any]) -> str:
    if figures.get("server_cpu_seconds") is None:
        return f"{figures['cpu_seconds']:.1f} s"
    return f"{figures['cpu_seconds']:.1f} + {figures['server_cpu_seconds']:.1f} s"


def report(all_results: dict[str, dict[str, list[dict[str, Any]]]], n: int, repeat: int) -> None:
    console = Console(width=max(Console().width, 110))  # the table stays whole when piped
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    table = Table(
        title=f"Recoup daily run, {n:,} open invoices, median of {repeat} "
        f"({cores} CPUs, load average {load:.1f} at the end)"
    )
    table.add_column("database")
    table.add_column("measure", no_wrap=True)
    table.add_column("median", justify="right")
    table.add_column("min–max", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")
    table.add_column("CPU (run + db)", justify="right")
    for kind, results in all_results.items():
        peak = 0.0
        for label, _ in RUNS:
            seconds = [r["seconds"] for r in results[label]]
            peak = max([peak, *(r["maxrss_mb"] for r in results[label])])
            median = statistics.median(seconds)
            target = TARGETS[label]
            ok = median <= target
            cpu = {
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in results[label]),
                "server_cpu_seconds": (
                    statistics.median(r["server_cpu_seconds"] for r in results[label])
                    if all(r.get("server_cpu_seconds") is not None for r in results[label])
                    else None
                ),
            }
            table.add_row(
                kind,
                f"{label} run",
                f"{median:.2f} s",
                f"{min(seconds):.2f}–{max(seconds):.2f} s",
                f"≤ {target:g} s",
                "[green]PASS[/green]" if ok else "[red]MISS[/red]",
                cpu_text(cpu),
            )
        memory = statistics.median(
            max(r["maxrss_mb"] for r in (results[label][i] for label, _ in RUNS))
            for i in range(len(results["first"]))
        )
        table.add_row(
            kind,
            "peak memory (run)",
            f"{memory:.0f} MB",
            f"max {peak:.0f} MB",
            f"≤ {MEMORY_TARGET_MB:g} MB",
            "[green]PASS[/green]" if memory <= MEMORY_TARGET_MB else "[red]MISS[/red]",
            "",
        )
        table.add_section()
    console.print(table)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, as_of, data_dir = sys.argv[2], date.fromisoformat(sys.argv[3]), sys.argv[4]
        child(url, as_of, data_dir, sys.argv[5] if len(sys.argv) > 5 else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="open invoices (default 100000)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="fresh databases to median over")
    parser.add_argument("--pg-url", default=PG_BASE, help=f"server URL (default {PG_BASE})")
    parser.add_argument(
        "--profile", metavar="DIR", help="write cProfile stats of the first repeat's runs here"
    )
    args = parser.parse_args()
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    base = args.pg_url if args.pg_url.endswith("/") else args.pg_url + "/"
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    console = Console(stderr=True)
    results = {
        kind: bench_database(kind, args.n, args.repeat, base, console, args.profile)
        for kind in kinds
    }
    report(results, args.n, args.repeat)


if __name__ == "__main__":
    main()
