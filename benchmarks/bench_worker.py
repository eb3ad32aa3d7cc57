"""Benchmark of `recoup worker` on PostgreSQL. A script that prints figures, not a test.

Workload: N pending `send_email` instances (one per plan, bulk Core inserts, see
tests/worker_book.py), delivered over SMTP to a local aiosmtpd server started by this script
(RECOUP_SMTP_URL=smtp://127.0.0.1:PORT). For each number of workers (1, then 2) and each
repeat: a fresh database, then that many `recoup worker --once` processes started together;
the time is the wall clock from the start of the processes to the end of the last one
(process start-up included). Figures: emails per second with one worker, and the speed-up of
two workers over one, each the median of the repeats.

    .venv/bin/python benchmarks/bench_worker.py --n 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from worker_book import seed_queue  # noqa: E402

from recoup.core.db import make_engine  # noqa: E402
from recoup.core.migrate import upgrade  # noqa: E402
from recoup.models import ActionInstance  # noqa: E402

PG_BASE = os.environ.get("RECOUP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/")
PG_DATABASE = "recoup_bench_worker"


class Sink:
    """An SMTP server's handler that accepts and counts every message."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_database(n: int) -> str:
    admin = make_engine(PG_BASE + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
    admin.dispose()
    url = PG_BASE + PG_DATABASE
    engine = make_engine(url)
    upgrade(engine)
    seed_queue(engine, n, action_type="send_email")
    engine.dispose()
    return url


def run_workers(url: str, workers: int, smtp_port: int, data_dir: Path, batch: int) -> float:
    env = dict(os.environ)
    env.update(
        RECOUP_DATABASE_URL=url,
        RECOUP_DATA_DIR=str(data_dir),
        RECOUP_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
    )
    command = [sys.executable, "-m", "recoup.cli.main", "worker", "--once", "--json"]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [*command, "--batch", str(batch), "--id", f"bench{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    results = [p.communicate() for p in processes]
    elapsed = time.perf_counter() - started
    for process, (out, err) in zip(processes, results, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"worker failed ({process.returncode}): {err}")
        totals = json.loads(out)[0]
        if totals["failed"] or totals["retried"]:
            raise SystemExit(f"worker had failures: {totals}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="email instances per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    console = Console()
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        with tempfile.TemporaryDirectory(prefix="recoup-bench-worker-") as tmp:
            for repeat in range(args.repeat):
                for workers in (1, 2):
                    url = fresh_database(args.n)
                    before = sink.count
                    elapsed = run_workers(url, workers, port, Path(tmp), args.batch)
                    delivered = sink.count - before
                    engine = make_engine(url)
                    with engine.connect() as conn:
                        done = conn.execute(
                            select(func.count())
                            .select_from(ActionInstance)
                            .where(ActionInstance.status == "done")
                        ).scalar_one()
                    engine.dispose()
                    if delivered != args.n or done != args.n:
                        raise SystemExit(f"expected {args.n}, got {delivered} emails, {done} done")
                    times[workers].append(elapsed)
                    console.print(
                        f"repeat {repeat + 1}: {workers} worker(s) {elapsed:.2f}s "
                        f"({args.n / elapsed:.1f} emails/s)",
                        highlight=False,
                    )
    finally:
        controller.stop()
    one, two = statistics.median(times[1]), statistics.median(times[2])
    table = Table(
        title=f"recoup worker on PostgreSQL: {args.n} emails over SMTP (median of "
        f"{args.repeat}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    table.add_column("workers")
    table.add_column("seconds", justify="right")
    table.add_column("emails/s", justify="right")
    table.add_column("speed-up", justify="right")
    table.add_row("1", f"{one:.2f}", f"{args.n / one:.1f}", "1.00")
    table.add_row("2", f"{two:.2f}", f"{args.n / two:.1f}", f"{one / two:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
