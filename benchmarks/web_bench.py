"""Response times of the back office's heaviest pages (issue 12) on PostgreSQL with 100,000
invoices. A script that prints figures, not a test.

The book is api_bench.py's (`recoup_api_bench`: run_bench's generator and a first run, built
once and reused). The app is served by uvicorn in a subprocess (1 worker, no access log) and
each page is asked for one request at a time by a logged-in admin, after a warm-up: the median
and the slowest of R requests, and the time of the same request to a page that runs no query
(the login form, logged out) as the floor of serving a page at all.

  GET /                       the dashboard: aging per currency, plans by status and level,
                              recovery per week, DSO, today's run, tasks, failed actions
  GET /late                   the late-invoice list, first page
  GET /late?<filters>         filtered: a level, days overdue from 30, a currency
  GET /late?search=…          a search by customer name (every late invoice is looked at)

Target: every page's median under 300 ms.

    .venv/bin/python benchmarks/web_bench.py --invoices 100000 --repeat 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from api_bench import PG_BASE, Server, prepare  # noqa: E402

TARGET_MS = 300.0


def session_cookie(url: str) -> str:
    """A logged-in admin's cookie: a user and a browser session made through the services."""
    from recoup.core.db import make_engine, make_sessionmaker, unit_of_work
    from recoup.users import repository as users
    from recoup.users.service import create_user, open_session
    from recoup.web.auth import COOKIE

    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            user = users.by_email(session, "bench@example.test")
            if user is None:
                user = create_user(
                    session,
                    name="bench",
                    email="bench@example.test",
                    role="admin",
                    password="bench-password-long-enough",
                )
            token = open_session(session, user).token
    finally:
        engine.dispose()
    return f"{COOKIE}={token}"


def timed(base: str, path: str, cookie: str | None) -> tuple[float, int, int]:
    request = urllib.request.Request(base + path)
    if cookie:
        request.add_header("Cookie", cookie)
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read()
        status = answer.status
    return (time.perf_counter() - began) * 1000, status, len(body)


def measure(base: str, path: str, cookie: str | None, repeat: int) -> tuple[float, float, int]:
    for _ in range(3):  # warm-up: the pool's connections, the templates, PostgreSQL's cache
        timed(base, path, cookie)
    times = []
    size = 0
    for _ in range(repeat):
        ms, status, size = timed(base, path, cookie)
        if status != 200:
            raise SystemExit(f"{path}: {status}")
        times.append(ms)
    return statistics.median(times), max(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000, help="default 100000")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page (default 20)")
    parser.add_argument("--pg-url", default=PG_BASE, help=f"server URL (default {PG_BASE})")
    parser.add_argument("--rebuild", action="store_true", help="build the database afresh")
    args = parser.parse_args()

    url = prepare(args.pg_url, args.invoices, args.rebuild)
    cookie = session_cookie(url)
    env = {"RECOUP_DATABASE_URL": url, "RECOUP_WEB_SECURE_COOKIES": "never"}
    server = Server("recoup.api.app:create_app", 1, env, "/login")
    pages = [
        ("floor: /login (no query)", "/login", None),
        ("dashboard /", "/", cookie),
        ("late /late", "/late", cookie),
        ("late filtered", "/late?min_days=30&currency=EUR", cookie),
        ("late search", "/late?search=Customer%201", cookie),
    ]
    ok = True
    try:
        print(f"{'page':<28} {'median ms':>10} {'max ms':>8} {'bytes':>8}  target")
        for label, path, who in pages:
            median, slowest, size = measure(server.base, path, who, args.repeat)
            verdict = "" if who is None else ("PASS" if median < TARGET_MS else "FAIL")
            ok = ok and verdict != "FAIL"
            print(f"{label:<28} {median:>10.1f} {slowest:>8.1f} {size:>8}  {verdict}")
    finally:
        server.stop()
    print(f"target: median under {TARGET_MS:.0f} ms -> {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
