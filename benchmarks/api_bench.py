"""Load benchmark of the REST API (issue 11) on PostgreSQL. A script that prints figures, not a
test.

The book: run_bench.py's generator (N open invoices, N/5 customers, its policy) in the database
`recoup_api_bench`, and a first run (execute=False) as of its date, so ~77% of the invoices have
a plan; the database is kept and reused while it holds N invoices and some plans. A new admin
key per benchmark. The API is served by uvicorn in a subprocess, as `recoup serve` serves it
(`create_served_app`; no access log, 1 and then 2 workers), and loaded by wrk from another
process, at C connections for D seconds each, after a short warm-up:

  GET  /api/v1/plans?status=active   the first page (20 plans)
  GET  /api/v1/plans/{id}            random plan ids of the book (a Lua script)
  POST /api/v1/payments              0.01 EUR on a random open invoice, a unique id (and
                                     Idempotency-Key) per request from wrk's thread and counter
  floor                              a bare FastAPI app in this file: one `def` route answering
                                     the JSON of the plans page above (same size), served the
                                     same way

Targets: each read within 3x of the floor's requests per second; p99 under 50 ms everywhere.

    .venv/bin/python benchmarks/api_bench.py --invoices 100000 --duration 10 --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
PG_DATABASE = "recoup_api_bench"
READ_RATIO_TARGET = 3.0  # floor rps / route rps, at most
P99_TARGET_MS = 50.0
SAMPLE = 2000  # plan ids and invoices handed to the Lua scripts
FLOOR_BODY_ENV = "RECOUP_BENCH_FLOOR_BODY"
WRK = "/usr/bin/wrk"
FLOOR = "floor (bare FastAPI)"


# --- the floor: served by uvicorn as `api_bench:floor_app` ---------------------------------


def floor_app() -> Any:
    """A bare FastAPI app: one route answering a fixed JSON body (the plans page the API
    answered, read from the file RECOUP_BENCH_FLOOR_BODY), a plain `def` like the API's routes,
    so the same threadpool hop and JSON encoding per request, and nothing else."""
    from fastapi import FastAPI

    body = json.loads(Path(os.environ[FLOOR_BODY_ENV]).read_text())
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/floor")
    def floor() -> Any:
        return body

    return app


# --- the book --------------------------------------------------------------------------------


def database_url(base: str) -> str:
    return base + PG_DATABASE


def prepare(base: str, n: int, rebuild: bool) -> str:
    """The benchmark's database, holding n invoices and the plans of a first run: reused as it
    is when it does, else built afresh."""
    from sqlalchemy import func, select, text

    from recoup.core.db import make_engine
    from recoup.models import Invoice, Plan

    url = database_url(base)
    admin = make_engine(base + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": PG_DATABASE}
            ).first()
    finally:
        admin.dispose()
    if exists and not rebuild:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                invoices = conn.scalar(select(func.count()).select_from(Invoice))
                plans = conn.scalar(select(func.count()).select_from(Plan))
        except Exception:
            invoices = plans = 0
        finally:
            engine.dispose()
        if invoices == n and plans:
            print(f"reusing {PG_DATABASE}: {invoices:,} invoices, {plans:,} plans", flush=True)
            _migrate(url)  # built by an older Recoup: the tables added since
            _analyze(url)
            return url
    build(base, n)
    _analyze(url)
    return url


def _analyze(url: str) -> None:
    """Fresh planner statistics: earlier runs' payments and idempotency keys are rows that
    autovacuum may not have counted yet, and a stale count can turn an index read into a scan
    (as a production database's autovacuum would keep them)."""
    from sqlalchemy import text

    from recoup.core.db import make_engine

    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def _migrate(url: str) -> None:
    from recoup.core.db import make_engine
    from recoup.core.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def build(base: str, n: int) -> None:
    from run_bench import AS_OF, build_book
    from sqlalchemy import text

    from recoup.core.db import make_engine, make_sessionmaker
    from recoup.core.env import EnvConfig
    from recoup.runs.service import run_dunning

    admin = make_engine(base + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
    finally:
        admin.dispose()
    url = database_url(base)
    began = time.perf_counter()
    build_book(url, n, seed=1)
    engine = make_engine(url)
    try:
        with tempfile.TemporaryDirectory(prefix="recoup-api-bench-") as tmp:
            env = EnvConfig(database_url=url, data_dir=Path(tmp), smtp_url=None, user="bench")
            stats = run_dunning(
                make_sessionmaker(engine), as_of=AS_OF, env=env, execute=False, actor="bench"
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    print(
        f"built {PG_DATABASE}: {n:,} invoices, {stats.plans_opened:,} plans opened by the first "
        f"run, in {time.perf_counter() - began:.0f} s",
        flush=True,
    )


@dataclass(frozen=True)
class Book:
    key: str
    plan_ids: list[int]
    invoices: list[tuple[str, str]]  # (invoice id, customer id), open


def sample(url: str) -> Book:
    from sqlalchemy import func, select

    from recoup.apikeys.service import create_key
    from recoup.core.db import make_engine, make_sessionmaker, unit_of_work
    from recoup.models import Invoice, Plan

    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            key = create_key(session, name=f"bench-{int(time.time())}", role="admin").key
            plan_ids = list(session.scalars(select(Plan.id).order_by(func.random()).limit(SAMPLE)))
            invoices = [
                (row.id, row.customer_id)
                for row in session.execute(
                    select(Invoice.id, Invoice.customer_id)
                    .where(Invoice.status == "open", Invoice.currency == "EUR")
                    .order_by(func.random())
                    .limit(SAMPLE)
                )
            ]
    finally:
        engine.dispose()
    return Book(key=key, plan_ids=plan_ids, invoices=invoices)


# --- serving and loading ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """uvicorn in a subprocess, `--workers N`, until stopped."""

    def __init__(self, app: str, workers: int, env: dict[str, str], probe: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # served as `recoup serve` serves (recoup.cli.serve_cmds.run_server), the floor too
        serve = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from recoup.cli.serve_cmds import run_server; "
            f"run_server({app!r}, host='127.0.0.1', port={self.port}, workers={workers}, "
            "access_log=False, log_level='warning')"
        )
        command = [sys.executable, "-c", serve]
        self.process = subprocess.Popen(command, env={**os.environ, **env})
        self.pid = self.process.pid
        self._wait(probe, workers)

    def _wait(self, probe: str, workers: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited ({self.process.returncode})")
            try:
                with urllib.request.urlopen(self.base + probe, timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answers (401 without a key is an answer)
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"the server did not answer {probe} within 60 s")
        time.sleep(1.0 * (workers - 1))  # the other workers still importing

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def call(
    base: str, method: str, path: str, key: str, body: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


PLAN_SCRIPT = """
local ids = {%(ids)s}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
function init(args)
  -- thread_id: a global setup() gave this thread's Lua state (a local would hide it)
  math.randomseed(os.time() * 100 + thread_id)
end
function request()
  return wrk.format("GET", "/api/v1/plans/" .. ids[math.random(#ids)], headers)
end
"""

PAYMENT_SCRIPT = """
local invoices = {%(invoices)s}
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
function init(args)
  -- thread_id: a global setup() gave this thread's Lua state (a local would hide it)
  math.randomseed(os.time() * 100 + thread_id)
end
function request()
  counter = counter + 1
  local pick = invoices[math.random(#invoices)]
  local id = string.format("%(prefix)s-%%d-%%d", thread_id, counter)
  local body = string.format(
    '{"id":"%%s","customer_id":"%%s","invoice_id":"%%s","amount":"0.01","currency":"EUR",'
    .. '"date":"%(date)s"}', id, pick[2], pick[1])
  wrk.headers["Idempotency-Key"] = id
  return wrk.format("POST", "/api/v1/payments", nil, body)
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    errors: int
    server_cpu_ms: float | None = None  # CPU per request: the server's processes
    db_cpu_ms: float | None = None  # and PostgreSQL's backends on the benchmark's database
    connections_opened: int | None = None  # database sessions the server opened meanwhile


# CPU time per request, read from /proc: unlike requests/s and latencies it hardly moves with
# what else the machine runs (other programs take turns on the cores, they do not make the
# server do more work), so it is the figure to compare between runs and between routes.


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0  # gone
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        found.append((int(entry.name), parent, cmdline))
    return found


_admin_dsn = "postgresql://postgres@127.0.0.1:5432/postgres"  # from --pg-url in bench()


def pg_sessions() -> int | None:
    """Sessions opened so far on the benchmark's database (pg_stat_database, PostgreSQL 14+):
    a server whose pool is smaller than its concurrency opens and closes connections all the
    time, which costs both sides and hides backends from the CPU figures."""
    import psycopg

    try:
        with psycopg.connect(_admin_dsn) as conn:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", (PG_DATABASE,)
            ).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the server (uvicorn and its workers) and of the PostgreSQL
    backends serving the benchmark's database (their process title names it)."""
    processes = _processes()
    tree = {pid}
    for _ in range(3):  # uvicorn's supervisor, its workers (and a multiprocessing helper)
        tree |= {child for child, parent, _ in processes if parent in tree}
    backends = [p for p, _, cmdline in processes if f" {PG_DATABASE} " in cmdline]
    return (
        sum(_cpu_seconds(p) for p in tree),
        sum(_cpu_seconds(p) for p in backends),
    )


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str) -> Figures:
    """Requests/sec, the 50% and 99% of `--latency`'s distribution, and what went wrong."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if rps is None or total is None or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    return Figures(
        rps=float(rps[1]),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(value) for value in errors.groups()) if errors else 0,
    )


def wrk(
    url: str,
    *,
    key: str | None,
    connections: int,
    duration: float,
    script: str | None = None,
    threads: int = 2,
    server_pid: int | None = None,
) -> Figures:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script or "")
    try:
        command = [
            WRK, "--latency", f"--threads={min(threads, connections)}",
            f"--connections={connections}", f"--duration={max(1, round(duration))}s",
            "--timeout=10s",
        ]  # fmt: skip
        if key is not None:
            command += ["--header", f"Authorization: Bearer {key}"]
        if script is not None:
            command += ["--header", "Content-Type: application/json", "--script", lua.name]
        before = server_cpu(server_pid) if server_pid else None
        sessions = pg_sessions() if server_pid else None
        done = subprocess.run(command + [url], capture_output=True, text=True, check=False)
        after = server_cpu(server_pid) if server_pid else None
        time.sleep(0.6)  # backends report their statistics within 0.5 s of going idle
        sessions_after = pg_sessions() if server_pid else None
        if done.returncode != 0:
            raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr}")
        figures = parse_wrk(done.stdout)
        if before and after and figures.requests:
            figures.server_cpu_ms = (after[0] - before[0]) * 1000 / figures.requests
            figures.db_cpu_ms = (after[1] - before[1]) * 1000 / figures.requests
        if sessions is not None and sessions_after is not None:
            figures.connections_opened = sessions_after - sessions
        return figures
    finally:
        os.unlink(lua.name)


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Row:
    route: str
    workers: int
    figures: Figures | None  # None: not available
    read: bool
    note: str = ""


def bench(args: argparse.Namespace) -> list[Row]:
    from run_bench import AS_OF

    global _admin_dsn
    _admin_dsn = args.pg_url.replace("postgresql+psycopg://", "postgresql://") + "postgres"
    url = prepare(args.pg_url, args.invoices, args.rebuild)
    book = sample(url)
    plan_ids = ", ".join(str(i) for i in book.plan_ids)
    invoices = ", ".join(f"{{{_lua_string(i)}, {_lua_string(c)}}}" for i, c in book.invoices)
    prefix = f"BENCH{int(time.time())}"
    rows: list[Row] = []
    load = {"connections": args.connections, "duration": args.duration}
    warm = {"connections": args.connections, "duration": args.warmup}
    with tempfile.TemporaryDirectory(prefix="recoup-api-bench-") as tmp:
        floor_body = Path(tmp) / "floor.json"
        env = {"RECOUP_DATABASE_URL": url, "RECOUP_DATA_DIR": tmp, FLOOR_BODY_ENV: str(floor_body)}
        for workers in args.workers:
            api = Server("recoup.api.app:create_served_app", workers, env, "/api/v1/openapi.json")
            try:
                status, body = call(api.base, "GET", "/api/v1/plans?status=active", book.key)
                if status != 200:
                    raise SystemExit(f"GET /api/v1/plans answered {status}: {body[:500]!r}")
                floor_body.write_bytes(body)
                plans = len(json.loads(body)["data"])
                print(f"{workers} worker(s): plans page {len(body):,} bytes, {plans} plans")
                targets = [
                    ("GET /plans?status=active", "/api/v1/plans?status=active", None),
                    (
                        "GET /plans/{id}",
                        "/api/v1/plans",
                        PLAN_SCRIPT % {"ids": plan_ids},
                    ),
                ]
                for label, path, script in targets:
                    wrk(api.base + path, key=book.key, script=script, **warm)
                    figures = wrk(
                        api.base + path, key=book.key, script=script, server_pid=api.pid, **load
                    )
                    rows.append(Row(label, workers, figures, read=True))
                    print(line(label, figures), flush=True)
                invoice, customer = book.invoices[0]
                probe = {
                    "id": f"{prefix}-probe-{workers}",
                    "customer_id": customer,
                    "invoice_id": invoice,
                    "amount": "0.01",
                    "currency": "EUR",
                    "date": AS_OF.isoformat(),
                }
                status, body = call(api.base, "POST", "/api/v1/payments", book.key, probe)
                label = "POST /payments"
                if status in (404, 405):
                    rows.append(Row(label, workers, None, read=False, note="not available"))
                    print(f"  {label}: not available ({status})", flush=True)
                else:
                    if status >= 300:
                        print(f"  {label} probe answered {status}: {body[:300]!r}", flush=True)
                    script = PAYMENT_SCRIPT % {
                        "invoices": invoices,
                        "prefix": f"{prefix}-w{workers}",
                        "date": AS_OF.isoformat(),
                    }
                    script_warm = script.replace(f"{prefix}-w{workers}", f"{prefix}-warm{workers}")
                    wrk(api.base + "/api/v1/payments", key=book.key, script=script_warm, **warm)
                    figures = wrk(
                        api.base + "/api/v1/payments",
                        key=book.key,
                        script=script,
                        server_pid=api.pid,
                        **load,
                    )
                    rows.append(Row(label, workers, figures, read=False))
                    print(line(label, figures), flush=True)
            finally:
                api.stop()
            floor = Server("api_bench:floor_app", workers, env, "/floor")
            try:
                wrk(floor.base + "/floor", key=None, **warm)
                figures = wrk(floor.base + "/floor", key=None, server_pid=floor.pid, **load)
                rows.append(Row(FLOOR, workers, figures, read=False))
                print(line(FLOOR, figures), flush=True)
            finally:
                floor.stop()
    return rows


def cpu_ms(figures: Figures) -> float:
    return (figures.server_cpu_ms or 0.0) + (figures.db_cpu_ms or 0.0)


def verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"


def cpu_text(figures: Figures) -> str:
    if figures.server_cpu_ms is None:
        return ""
    if figures.connections_opened:  # the backends that ended took their CPU figures along
        return f"{figures.server_cpu_ms:.2f} + ? ms"
    return f"{figures.server_cpu_ms:.2f} + {figures.db_cpu_ms or 0.0:.2f} ms"


def line(label: str, figures: Figures) -> str:
    return (
        f"  {label}: {figures.rps:,.0f} requests/s, p50 {figures.p50_ms:.1f} ms, p99 "
        f"{figures.p99_ms:.1f} ms, CPU/request {cpu_text(figures) or '-'}, "
        f"{figures.requests:,} requests, {figures.non_2xx} non-2xx, {figures.errors} errors"
    )


def report(rows: list[Row], args: argparse.Namespace) -> bool:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 190))
    load = os.getloadavg()[0]
    table = Table(
        title=f"Recoup API (/api/v1) on PostgreSQL, {args.invoices:,} invoices, {args.connections} "
        f"connections, {args.duration:g} s each ({os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the end)"
    )
    for column, justify in (
        ("route", "left"), ("workers", "right"), ("requests/s", "right"), ("p50", "right"),
        ("p99 (< 50 ms)", "right"), ("floor/route (≤ 3)", "right"),
        ("CPU/request server + db", "right"), ("CPU / floor's", "right"),
        ("db conns opened", "right"), ("non-2xx", "right"),
    ):  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=column == "route")  # type: ignore[arg-type]
    floors = {r.workers: r.figures for r in rows if r.route == FLOOR and r.figures}
    passed = True
    for row in rows:
        figures = row.figures
        if figures is None:
            table.add_row(row.route, str(row.workers), row.note, *[""] * 7)
            continue
        floor = floors.get(row.workers)
        ratio = floor.rps / figures.rps if floor and figures.rps else None
        ratio_ok = ratio is not None and ratio <= READ_RATIO_TARGET
        p99_ok = figures.p99_ms < P99_TARGET_MS
        passed &= p99_ok and (ratio_ok or not row.read)
        table.add_row(
            row.route,
            str(row.workers),
            f"{figures.rps:,.0f}",
            f"{figures.p50_ms:.1f} ms",
            f"{figures.p99_ms:.1f} ms " + verdict(p99_ok),
            (f"{ratio:.2f} " + verdict(ratio_ok)) if row.read and ratio is not None else "",
            cpu_text(figures),
            f"{cpu_ms(figures) / cpu_ms(floor):.1f}" if floor and cpu_ms(floor) else "",
            str(figures.connections_opened) if figures.connections_opened is not None else "",
            f"{figures.non_2xx + figures.errors}" if figures.non_2xx + figures.errors else "",
        )
    console.print(table)
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000, help="default 100000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per route")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each")
    parser.add_argument(
        "--workers",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 2],
        help='server processes, one measure each (default "1,2")',
    )
    parser.add_argument("--connections", type=int, default=16, help="default 16")
    parser.add_argument("--pg-url", default=PG_BASE, help=f"server URL (default {PG_BASE})")
    parser.add_argument("--rebuild", action="store_true", help=f"build {PG_DATABASE} afresh")
    args = parser.parse_args()
    if not args.pg_url.endswith("/"):
        args.pg_url += "/"
    rows = bench(args)
    ok = report(rows, args)
    print("every target PASS" if ok else "a target FAILS")


if __name__ == "__main__":
    main()
